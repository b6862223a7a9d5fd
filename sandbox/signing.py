"""How each protocol signs a webhook delivery, and the keys it signs with.

fal (docs.fal.ai/model-apis/model-endpoints/webhooks): ED25519 over
`request_id + "\\n" + user_id + "\\n" + timestamp + "\\n" + sha256_hex(body)`, the signature in hex,
in headers X-Fal-Webhook-Request-Id / -User-Id (here the account name) / -Timestamp (unix
seconds) / -Signature; the public keys are a JWKS (OKP, Ed25519, `x` base64url) at
https://rest.alpha.fal.ai/.well-known/jwks.json, which the sandbox serves at
/fal/.well-known/jwks.json.

AtlasCloud (atlascloud.ai/docs/webhooks, as receivers written against it read it): ED25519 over
`timestamp + "." + body`, base64url without padding, in X-AtlasCloud-Webhook-Signature-Ed25519 with
X-AtlasCloud-Webhook-Key-Id and -Timestamp; the JWKS is at
https://api.atlascloud.ai/api/v1/webhooks/jwks.json, served here at
/atlascloud/api/v1/webhooks/jwks.json. The same receivers say a legacy HMAC with the account's
secret rides in X-AtlasCloud-Webhook-Signature (hex); its message is not in the public record, so
the sandbox's choice is HMAC-SHA256 hex of `timestamp + "." + body`, keyed with the account's
secret (`account_secret`, which the admin API hands to a test or relay).

The ED25519 keys are made once per state folder and kept in the Store, so a restarted sandbox
signs with the key its receivers already fetched. A wrong signature (the knob) is made with a
throwaway key or a wrong secret: well-formed, and failing verification.
"""

import base64
import hashlib
import hmac

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sandbox.store import Store

SIGNING_PROTOCOLS = ("fal", "atlascloud")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def account_secret(account: str) -> str:
    """The account's webhook signing secret: derived from the account (itself a digest of the
    credential), so it is stable across restarts and never shows the credential."""
    return "whsec_" + hashlib.sha256(f"atlascloud-webhook:{account}".encode()).hexdigest()[:40]


class Signer:
    def __init__(self, store: Store):
        self._keys: dict[str, Ed25519PrivateKey] = {}
        for protocol in SIGNING_PROTOCOLS:
            saved = store.setting(f"webhook_key:{protocol}")
            if saved is None:
                saved = Ed25519PrivateKey.generate().private_bytes_raw().hex()
                store.save_setting(f"webhook_key:{protocol}", saved)
            self._keys[protocol] = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(saved))

    def key_id(self, protocol: str) -> str:
        return hashlib.sha256(self._public(protocol)).hexdigest()[:16]

    def _public(self, protocol: str) -> bytes:
        return self._keys[protocol].public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def jwks(self, protocol: str) -> dict:
        return {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": b64url(self._public(protocol)),
                          "kid": self.key_id(protocol), "alg": "EdDSA", "use": "sig"}]}

    def _sign(self, protocol: str, message: bytes, wrong: bool) -> bytes:
        key = Ed25519PrivateKey.generate() if wrong else self._keys[protocol]
        return key.sign(message)

    def fal(self, request_id: str, user_id: str, timestamp: str, body: bytes,
            wrong: bool = False) -> dict[str, str]:
        message = "\n".join([request_id, user_id, timestamp,
                             hashlib.sha256(body).hexdigest()]).encode()
        return {"X-Fal-Webhook-Request-Id": request_id, "X-Fal-Webhook-User-Id": user_id,
                "X-Fal-Webhook-Timestamp": timestamp,
                "X-Fal-Webhook-Signature": self._sign("fal", message, wrong).hex()}

    def atlascloud(self, webhook_id: str, event: str, account: str, timestamp: str,
                   body: bytes, wrong: bool = False) -> dict[str, str]:
        message = timestamp.encode() + b"." + body
        secret = account_secret(account) + ("-wrong" if wrong else "")
        return {"X-AtlasCloud-Webhook-Id": webhook_id, "X-AtlasCloud-Webhook-Event": event,
                "X-AtlasCloud-Webhook-Timestamp": timestamp,
                "X-AtlasCloud-Webhook-Key-Id": self.key_id("atlascloud"),
                "X-AtlasCloud-Webhook-Signature-Ed25519": b64url(
                    self._sign("atlascloud", message, wrong)),
                "X-AtlasCloud-Webhook-Signature": hmac.new(
                    secret.encode(), message, hashlib.sha256).hexdigest()}
