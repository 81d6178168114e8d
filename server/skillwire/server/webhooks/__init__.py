"""Webhooks: signed, durable, retried delivery of task results (Standard Webhooks).

The backbone creates one delivery per URL with a task's terminal event and keeps the queue;
``WebhookDispatcher`` claims due deliveries and sends them; ``UrlGuard`` is the SSRF guard
used at call time and on every connection; ``Signer`` signs each attempt.
"""

from __future__ import annotations

from ._dispatcher import WebhookDispatcher
from ._signing import Signer, derive_secret, parse_secret, sign
from ._ssrf import Unresolvable, UnsafeUrl, UrlGuard
from ._views import delivery_view

__all__ = [
    "Signer",
    "Unresolvable",
    "UnsafeUrl",
    "UrlGuard",
    "WebhookDispatcher",
    "delivery_view",
    "derive_secret",
    "parse_secret",
    "sign",
]
