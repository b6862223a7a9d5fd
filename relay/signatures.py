"""The signatures fal and AtlasCloud put on their deliveries, checked as their docs say.

fal (docs.fal.ai/model-apis/model-endpoints/webhooks): ED25519, hex, over
`request_id \\n user_id \\n timestamp \\n sha256_hex(body)` in X-Fal-Webhook-Signature, the three
fields in X-Fal-Webhook-Request-Id / -User-Id / -Timestamp; the keys are a JWKS (no key id in the
headers: any key of the set may have signed).
AtlasCloud (atlascloud.ai/docs webhooks): ED25519, base64url, over `timestamp.body` in
X-AtlasCloud-Webhook-Signature-Ed25519, the key named by X-AtlasCloud-Webhook-Key-Id in its JWKS.
A timestamp outside the replay window (5 minutes either way, as fal's docs ask) is stale: a
captured delivery played again later is refused like a forged one. Keys are fetched once and
again when a signature fails against them (a rotation), at most once a minute.
"""

import base64
import binascii
import hashlib
import threading
import time

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

REPLAY_WINDOW_S = 300.0
REFETCH_AFTER_S = 60.0


class Forged(Exception):
    """Not signed by the provider (or not signed at all): answered 401, logged."""


class Stale(Forged):
    """Signed, but outside the replay window."""


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Jwks:
    """A provider's public keys, from its JWKS URL (the sandbox's, on the sandbox)."""

    def __init__(self, url: str, fetch=None):
        self.url = url
        self._fetch = fetch or (lambda: httpx.get(url, timeout=10).raise_for_status().json())
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched_at = float("-inf")
        self._guard = threading.Lock()

    def _refresh(self) -> None:
        with self._guard:
            if time.monotonic() - self._fetched_at < REFETCH_AFTER_S:
                return
            self._fetched_at = time.monotonic()
            try:
                keys = self._fetch()["keys"]
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                return  # keep the keys we had; the delivery is refused and retried later
            found = {}
            for n, key in enumerate(keys if isinstance(keys, list) else []):
                try:  # a malformed key is skipped, never the set
                    if key.get("kty") == "OKP" and key.get("crv") == "Ed25519":
                        found[str(key.get("kid", n))] = Ed25519PublicKey.from_public_bytes(
                            _b64url(key["x"]))
                except (AttributeError, KeyError, TypeError, ValueError, binascii.Error):
                    continue
            if found:
                self._keys = found

    def verify(self, signature: bytes, message: bytes, kid: str | None = None) -> None:
        for attempt in range(2):
            if attempt or not self._keys:
                self._refresh()
            keys = [self._keys[kid]] if kid in self._keys else [] if kid else list(
                self._keys.values())
            for key in keys:
                try:
                    key.verify(signature, message)
                    return
                except InvalidSignature:
                    continue
        raise Forged("the signature matches none of the provider's keys")


def _fresh(timestamp: str | None, now: float) -> None:
    """Unix seconds, as both providers send them, within the replay window."""
    if not (timestamp and timestamp.isascii() and timestamp.isdigit() and len(timestamp) < 16):
        raise Forged("the timestamp is not unix seconds")
    if abs(now - int(timestamp)) > REPLAY_WINDOW_S:
        raise Stale(f"the timestamp is {now - int(timestamp):+.0f} s from now, outside the "
                    f"{REPLAY_WINDOW_S:.0f} s replay window")


def verify_fal(headers, body: bytes, keys: Jwks, now: float) -> str:
    """The delivery's request id, once its signature and timestamp check."""
    request_id = headers.get("x-fal-webhook-request-id")
    user_id = headers.get("x-fal-webhook-user-id")
    timestamp = headers.get("x-fal-webhook-timestamp")
    if not (request_id and user_id and timestamp and headers.get("x-fal-webhook-signature")):
        raise Forged("unsigned: fal's X-Fal-Webhook-* headers are missing")
    try:
        signature = bytes.fromhex(headers["x-fal-webhook-signature"])
    except ValueError:
        raise Forged("the signature is not hex") from None
    _fresh(timestamp, now)
    message = "\n".join([request_id, user_id, timestamp, hashlib.sha256(body).hexdigest()])
    keys.verify(signature, message.encode())
    return request_id


def verify_atlascloud(headers, body: bytes, keys: Jwks, now: float) -> None:
    """The delivery's signature and timestamp check, or Forged."""
    timestamp = headers.get("x-atlascloud-webhook-timestamp")
    signed = headers.get("x-atlascloud-webhook-signature-ed25519")
    if not (timestamp and signed):
        raise Forged("unsigned: AtlasCloud's X-AtlasCloud-Webhook-* headers are missing")
    try:
        signature = _b64url(signed)
    except (binascii.Error, ValueError):
        raise Forged("the signature is not base64url") from None
    _fresh(timestamp, now)
    keys.verify(signature, timestamp.encode() + b"." + body,
                headers.get("x-atlascloud-webhook-key-id"))
