"""Adapters wired to the session's sandbox, one fresh account per test."""

import asyncio
import io
import uuid

import pytest
from PIL import Image
from pydantic import SecretStr

from models import Endpoint, SubmitRequest
from providers.atlascloud import AtlasCloudAdapter
from providers.credentials import ApiKey, KlingKeys
from providers.fal_queue import FalQueue
from providers.kling_native import KlingNative
from providers.openai_videos import OpenAIVideos
from sandbox.knobs import KLING_ACCESS_KEY, KLING_SECRET_KEY

PROTOCOLS = ["openai_videos", "fal_queue", "kling_native"]
ALL_PROTOCOLS = [*PROTOCOLS, "atlascloud"]


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 90, 160)).save(out, "PNG")
    return out.getvalue()


def text_request(protocol: str, prompt: str = "A fox runs through snow", **update
                 ) -> SubmitRequest:
    base = {
        "openai_videos": dict(model="sora-2", endpoint="sora-2", seconds=4,
                              wire_params={"model": "sora-2"}, size="1280x720"),
        "fal_queue": dict(model="kling-v3-fal", endpoint="fal-ai/kling-video/v3", seconds=5,
                          wire_params={"app": "fal-ai/kling-video/v3/standard"}),
        "kling_native": dict(model="kling-v3", endpoint="kling-v3", seconds=5,
                             wire_params={"mode": "std"}),
        "atlascloud": dict(model="wan-2.6", endpoint="alibaba/wan-2.6", seconds=5),
    }[protocol]
    fields = {"mode": "text", "prompt": prompt, "resolution": "720p", "aspect_ratio": "16:9",
              **base, **update}
    return SubmitRequest(**fields)


_LOOP: list[asyncio.AbstractEventLoop] = []


def run(coro):
    """Run a coroutine on the test's own event loop (adapters keep connections across calls)."""
    return _LOOP[-1].run_until_complete(coro)


@pytest.fixture(autouse=True)
def event_loop_for_adapters():
    loop = asyncio.new_event_loop()
    _LOOP.append(loop)
    yield loop
    _LOOP.remove(loop)
    loop.close()


@pytest.fixture
def make_adapter(sandbox, event_loop_for_adapters):
    """make_adapter(protocol) -> an adapter on its own sandbox account."""
    made = []

    def make(protocol: str, **kwargs):
        endpoint = Endpoint(protocol=protocol, kind="sandbox", base_url=sandbox.url)
        account = uuid.uuid4().hex[:10]
        if protocol == "kling_native":
            access = f"ak-{account}"
            sandbox.knobs(kling_keys={KLING_ACCESS_KEY: {"secret": KLING_SECRET_KEY},
                                      access: {"secret": KLING_SECRET_KEY}})
            credential = KlingKeys(access_key=SecretStr(access),
                                   secret_key=SecretStr(KLING_SECRET_KEY))
            adapter = KlingNative(endpoint, credential, account=f"kling:{account}", **kwargs)
        else:
            credential = ApiKey(key=SecretStr(f"sk-{account}"), ref="TEST_KEY")
            cls = {"openai_videos": OpenAIVideos, "fal_queue": FalQueue,
                   "atlascloud": AtlasCloudAdapter}[protocol]
            adapter = cls(endpoint, credential, account=account, **kwargs)
        made.append(adapter)
        return adapter

    yield make

    async def close():
        for adapter in made:
            await adapter.aclose()

    event_loop_for_adapters.run_until_complete(close())
