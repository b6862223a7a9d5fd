import time
import uuid

import httpx
import jwt
import pytest

from sandbox.knobs import KLING_ACCESS_KEY, KLING_SECRET_KEY


@pytest.fixture
def key() -> str:
    """A fresh credential, hence a fresh account: jobs of other tests never count here."""
    return f"sk-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def openai_http(sandbox, key):
    with httpx.Client(base_url=sandbox.url + "/openai/v1", timeout=30,
                      headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


def kling_token(access: str = KLING_ACCESS_KEY, secret: str = KLING_SECRET_KEY,
                now: float | None = None, exp_in: float = 1800, nbf_ago: float = 5) -> str:
    now = time.time() if now is None else now
    return jwt.encode({"iss": access, "exp": int(now + exp_in), "nbf": int(now - nbf_ago)},
                      secret, algorithm="HS256", headers={"alg": "HS256", "typ": "JWT"})


@pytest.fixture
def kling_http(sandbox):
    """A Kling client on its own account (a fresh access key registered for the test)."""
    access = f"ak-{uuid.uuid4().hex[:10]}"
    sandbox.knobs(kling_keys={KLING_ACCESS_KEY: {"secret": KLING_SECRET_KEY},
                              access: {"secret": KLING_SECRET_KEY}})
    with httpx.Client(base_url=sandbox.url + "/kling", timeout=30,
                      headers={"Authorization": f"Bearer {kling_token(access)}"}) as client:
        client.access_key = access  # type: ignore[attr-defined]
        yield client


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)
