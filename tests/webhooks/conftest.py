"""Fixtures: a webhook receiver on 127.0.0.1 for each test that wants one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.webhooks.helpers import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A started receiver that answers 200 unless the test sets ``respond``."""
    running = Receiver()
    running.start()
    yield running
    running.stop()
