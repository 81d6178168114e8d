"""Standard Webhooks signatures (https://www.standardwebhooks.com/), with the standard library.

A secret is ``whsec_`` + base64 of the key bytes. Each attempt is signed anew:
``webhook-signature: v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">``,
so a receiver may reject stale timestamps while a retry still verifies. Written with ``hmac``
rather than a dependency: the scheme is a dozen lines, and the tests check it against the
``standardwebhooks`` package.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from skillwire.protocol import ValidationError

__all__ = ["SECRET_PREFIX", "Signer", "derive_secret", "parse_secret", "sign"]

SECRET_PREFIX = "whsec_"
MIN_KEY_BYTES = 16


def parse_secret(secret: str, *, field: str = "webhooks.secret") -> bytes:
    """The key bytes of a ``whsec_<base64>`` secret; ValidationError naming ``field`` if bad."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not secret.startswith(SECRET_PREFIX) or len(key) < MIN_KEY_BYTES:
        raise ValidationError(
            f"`{field}` must be whsec_ followed by the base64 of at least {MIN_KEY_BYTES} bytes",
            details={"field": field, "constraint": "whsec_<base64>"},
        )
    return key


def derive_secret(deployment_secret: bytes) -> str:
    """A ``whsec_`` secret derived from the backbone's shared secret (the same in every
    process of a deployment, so every gateway signs alike when none is configured)."""
    key = hmac.new(deployment_secret, b"skillwire webhooks v1", hashlib.sha256).digest()
    return SECRET_PREFIX + base64.b64encode(key).decode("ascii")


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256>``."""
    signed = b"%s.%d.%s" % (msg_id.encode("utf-8"), timestamp, body)
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


class Signer:
    """Signs deliveries: with a URL's own secret when it has one, else the global one."""

    def __init__(self, secret: str, per_url: Mapping[str, str] | None = None) -> None:
        self._key = parse_secret(secret)
        self._per_url = {
            url: parse_secret(value, field=f"webhooks.secrets[{url!r}]")
            for url, value in (per_url or {}).items()
        }

    def headers(self, url: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        key = self._per_url.get(url, self._key)
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(key, msg_id, timestamp, body),
        }
