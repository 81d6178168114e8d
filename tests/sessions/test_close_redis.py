"""Closing a session on Redis survives a closer that stopped half-way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.conftest import USER_KEY, RedisServer, RunningServer, start_server
from tests.server.conftest import UNLIMITED, backbone_settings

from .helpers import new_session, session_sse


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    running = start_server({**UNLIMITED, **backbone_settings(request, "redis", db=7)})
    yield running
    running.stop()


def test_a_close_left_half_way_can_be_finished(
    server: RunningServer, redis_server: RedisServer
) -> None:
    """A session left 'closing' (its closer stopped before session.closed) is closed by the
    next DELETE, whose session.closed ends its log; a DELETE after that is 409."""
    with server.client(USER_KEY) as client:
        session_id = new_session(client)["session_id"]
        direct = redis.Redis(port=redis_server.port, db=7)
        direct.hset(f"sw:{{{session_id}}}:session", "status", "closing")
        direct.close()
        assert client.get(f"/api/v1/sessions/{session_id}").json()["status"] == "closed"
        assert client.delete(f"/api/v1/sessions/{session_id}").status_code == 200
        assert client.delete(f"/api/v1/sessions/{session_id}").status_code == 409
    events = session_sse(server, session_id, key=USER_KEY)
    assert [e["type"] for e in events] == ["session.closed"]
