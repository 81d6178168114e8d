"""Standard Webhooks signatures, checked against the ``standardwebhooks`` package."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks

from skillwire.protocol import ValidationError
from skillwire.server import load_config
from skillwire.server.http import create_app
from skillwire.server.webhooks import Signer, derive_secret, parse_secret, sign
from tests.webhooks.helpers import OTHER_SECRET, SECRET


@pytest.mark.parametrize(
    "body", [b"{}", b'{"type":"task.completed","data":{"text":"h\xc3\xa9llo \xe2\x9c\x93"}}']
)
def test_signature_verifies_with_standardwebhooks(body: bytes) -> None:
    """A signature made with hmac verifies with the reference implementation."""
    signer = Signer(SECRET)
    headers = signer.headers("https://r.example/h", "msg_abc_0", int(time.time()), body)
    assert headers["webhook-signature"].startswith("v1,")
    assert standardwebhooks.Webhook(SECRET).verify(body, headers) is not None


def test_signature_matches_the_reference_byte_for_byte() -> None:
    """``sign`` gives exactly what ``standardwebhooks.Webhook.sign`` gives."""
    stamp = 1_700_000_000
    reference = standardwebhooks.Webhook(SECRET).sign(
        "msg_x_1", datetime.fromtimestamp(stamp, UTC), '{"a":1}'
    )
    assert sign(parse_secret(SECRET), "msg_x_1", stamp, b'{"a":1}') == reference


def test_per_url_secret_signs_that_url_only() -> None:
    """A URL listed in webhooks.secrets is signed with its own secret; others with the global."""
    own = "https://own.example/h"
    signer = Signer(SECRET, {own: OTHER_SECRET})
    body = b'{"x":1}'
    stamp = int(time.time())
    mine = signer.headers(own, "msg_1", stamp, body)
    other = signer.headers("https://else.example/h", "msg_1", stamp, body)
    standardwebhooks.Webhook(OTHER_SECRET).verify(body, mine)
    standardwebhooks.Webhook(SECRET).verify(body, other)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(SECRET).verify(body, mine)


@pytest.mark.parametrize(
    "secret",
    [
        "abc",  # no prefix
        "whsec_",  # empty
        "whsec_!!!notbase64",
        "whsec_" + base64.b64encode(b"short").decode(),  # under 16 bytes
    ],
)
def test_bad_secrets_are_refused(secret: str) -> None:
    """A secret that is not whsec_<base64 of 16+ bytes> is a ValidationError naming the key."""
    with pytest.raises(ValidationError) as caught:
        parse_secret(secret)
    assert caught.value.details["field"] == "webhooks.secret"


def test_unpadded_secret_is_accepted() -> None:
    """Base64 without its padding decodes as the reference implementation decodes it."""
    padded = "whsec_" + base64.b64encode(b"seventeen bytes!!").decode()
    assert padded.endswith("=")
    assert parse_secret(padded.rstrip("=")) == b"seventeen bytes!!"


def test_derived_secret_is_stable_and_valid() -> None:
    """The secret derived from a deployment secret is a valid whsec_ and always the same."""
    first = derive_secret(b"x" * 32)
    assert first == derive_secret(b"x" * 32)
    assert first != derive_secret(b"y" * 32)
    assert len(parse_secret(first)) == 32


def test_a_bad_configured_secret_stops_the_server() -> None:
    """create_app refuses a malformed webhooks.secret (and a per-URL one) at start."""
    with pytest.raises(ValidationError):
        create_app(load_config(environ={}, overrides={"webhooks": {"secret": "nope"}}))
    with pytest.raises(ValidationError) as caught:
        create_app(
            load_config(
                environ={},
                overrides={"webhooks": {"secret": SECRET, "secrets": {"https://a.example": "x"}}},
            )
        )
    assert "https://a.example" in caught.value.details["field"]
