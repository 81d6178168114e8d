"""A session's log is capped like a task's: a reader behind what it keeps gets a snapshot."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import USER_KEY, RunningServer, start_server
from tests.server.conftest import UNLIMITED, backbone_settings, finished

from .conftest import SESSION_BACKBONES
from .helpers import call_in, new_session, session_log, session_ndjson

MAX_EVENTS = 8


@pytest.fixture(scope="module", params=SESSION_BACKBONES)
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    running = start_server(
        {"max_events": MAX_EVENTS, **UNLIMITED, **backbone_settings(request, request.param, db=4)}
    )
    yield running
    running.stop()


def test_a_reader_behind_the_kept_log_gets_a_snapshot_then_the_rest(
    server: RunningServer,
) -> None:
    """The log keeps about max_events; after=0 then starts with session.snapshot, then the rest."""
    with server.client(USER_KEY) as client:
        session_id = new_session(client)["session_id"]
        tasks = [
            call_in(client, session_id, "echo", [{"text": str(i)}]).json()["task_id"]
            for i in range(6)
        ]
        for task_id in tasks:
            finished(client, task_id)
        last_seq = client.get(f"/api/v1/sessions/{session_id}").json()["last_seq"]
    kept = session_log(server, session_id)
    assert kept[0]["seq"] > 1
    assert len(kept) <= MAX_EVENTS + MAX_EVENTS // 4 + 1
    (snapshot,) = session_ndjson(server, session_id, params={"after": "0"}, limit=1)
    assert snapshot["type"] == "session.snapshot"
    assert snapshot["seq"] == last_seq
    assert [t["task_id"] for t in snapshot["data"]["tasks"]] == tasks
    assert all(t["status"] == "completed" for t in snapshot["data"]["tasks"])
    # A reader within what is kept gets no snapshot: the events themselves.
    within = session_ndjson(server, session_id, params={"after": str(kept[0]["seq"])}, limit=2)
    assert within == kept[1:3]
