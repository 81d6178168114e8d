"""Session tests run on each backbone that has sessions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import BACKBONES, RunningServer, start_server
from tests.server.conftest import UNLIMITED, backbone_settings

SESSION_BACKBONES = BACKBONES


@pytest.fixture(scope="module", params=SESSION_BACKBONES)
def session_server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    """One server per backbone for a module's session tests."""
    running = start_server(
        {"heartbeat_interval": 0.5, **UNLIMITED, **backbone_settings(request, request.param, db=2)}
    )
    yield running
    running.stop()
