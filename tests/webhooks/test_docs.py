"""The verify-by-hand example of docs/webhooks.md accepts real deliveries and nothing else."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import RunningServer
from tests.webhooks.helpers import OTHER_SECRET, SECRET, Receiver, call_echo, server_with_hooks

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def by_hand() -> Callable[..., bool]:
    """The ``verify`` function of the docs' verify-by-hand block."""
    match = re.search(r"<!-- verify-by-hand -->\n```python\n(.*?)```", DOC.read_text(), re.S)
    assert match is not None
    namespace: dict[str, Any] = {}
    exec(match.group(1), namespace)
    verify: Callable[..., bool] = namespace["verify"]
    return verify


def test_verify_by_hand_checks_real_deliveries(
    server_factory: Callable[..., RunningServer], receiver: Receiver
) -> None:
    """The documented function accepts a real delivery and rejects a wrong secret or body."""
    verify = by_hand()
    server = server_with_hooks(server_factory)
    with server.client() as client:
        call_echo(client, receiver.url)
    (receipt,) = receiver.wait(lambda seen: len(seen) == 1)
    assert verify(SECRET, receipt.headers, receipt.body)
    assert not verify(OTHER_SECRET, receipt.headers, receipt.body)
    assert not verify(SECRET, receipt.headers, receipt.body + b" ")
    stale = {
        **receipt.headers,
        "webhook-timestamp": str(int(receipt.headers["webhook-timestamp"]) - 600),
    }
    assert not verify(SECRET, stale, receipt.body)
