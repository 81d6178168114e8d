"""The cross-channel resume property, extended to sessions.

Random tasks join a session at random moments while random readers follow it: each joins at
a random moment, reads a random number of events on a random channel (WebSocket, SSE,
NDJSON), with or without a snapshot, drops and resumes from the last session seq it saw, until
``session.closed``. Every reader sees each session event exactly once and in the log's order;
a ``session.snapshot`` stands for exactly the events it skips (its tasks are as of its seq).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

from tests.conftest import ADMIN_KEY, RunningServer, scaled, start_server
from tests.server.conftest import backbone_settings, finished

from .conftest import SESSION_BACKBONES
from .helpers import call_in, new_session, session_log, session_ndjson, session_sse


@pytest.fixture(scope="module", params=SESSION_BACKBONES)
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    running = start_server(
        {
            "heartbeat_interval": 0.5,
            "rate_limit": "0",
            **backbone_settings(request, request.param, db=3),
        }
    )
    yield running
    running.stop()


@dataclass
class Leg:
    channel: str
    snapshot: bool
    limit: int | None


def ws_session_events(
    server: RunningServer, session_id: str, after: int, snapshot: bool, limit: int | None
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    with connect(
        f"{server.ws_url}/api/v1/ws",
        subprotocols=["skillwire.v1"],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        open_timeout=scaled(10),
    ) as conn:
        subscribe = {"op": "subscribe", "ref": "s", "session_id": session_id, "after": after}
        conn.send(json.dumps({**subscribe, "snapshot": snapshot}))
        while True:
            frame = conn.recv(timeout=scaled(20))
            assert isinstance(frame, str)
            for line in frame.split("\n"):
                message = json.loads(line)
                assert message["op"] != "error", message
                if message["op"] == "ended":
                    return events
                if message["op"] != "session_event":
                    continue
                event = message["event"]
                events.append(event)
                if ends(event) or (limit is not None and len(events) >= limit):
                    return events


def ends(event: dict[str, Any]) -> bool:
    return event["type"] == "session.closed" or (
        event["type"] == "session.snapshot" and event["data"]["session"]["status"] == "closed"
    )


def read_leg(server: RunningServer, session_id: str, after: int, leg: Leg) -> list[dict[str, Any]]:
    if leg.channel == "ws":
        return ws_session_events(server, session_id, after, leg.snapshot, leg.limit)
    params = {"after": str(after), **({"snapshot": "true"} if leg.snapshot else {})}
    if leg.channel == "sse":
        return session_sse(server, session_id, params=params, limit=leg.limit)
    return session_ndjson(server, session_id, params=params, limit=leg.limit)


def follow(
    server: RunningServer, session_id: str, delay: float, legs: list[Leg]
) -> list[dict[str, Any]]:
    """Everything one reader received, leg after leg, each resuming from its last seq."""
    time.sleep(delay)  # when this reader joins; nothing is asserted about the moment
    seen: list[dict[str, Any]] = []
    legs = [*legs, Leg("sse", False, None)]  # the last one reads to the end
    for leg in legs:
        after = seen[-1]["seq"] if seen else 0
        seen.extend(read_leg(server, session_id, after, leg))
        if seen and ends(seen[-1]):
            break
    return seen


def check_reader(seen: list[dict[str, Any]], log: list[dict[str, Any]]) -> None:
    """Exactly once, in order; a snapshot stands for exactly the events before its seq."""
    by_seq = {e["seq"]: e for e in log}
    previous = 0
    for event in seen:
        if event["type"] == "session.snapshot":
            assert event["seq"] >= previous
            assert event["data"]["session"]["last_seq"] == event["seq"]
            upto = [e for e in log if e["seq"] <= event["seq"]]
            for task in event["data"]["tasks"]:
                task_events = [
                    e
                    for e in upto
                    if e["type"] == "task.event" and e["data"]["task_id"] == task["task_id"]
                ]
                assert task["last_seq"] == task_events[-1]["data"]["seq"]
            joined = [e["data"]["task_id"] for e in upto if e["type"] == "session.task"]
            assert [t["task_id"] for t in event["data"]["tasks"]] == joined[-100:]
        else:
            assert event["seq"] == previous + 1, (previous, event["seq"])
            assert event == by_seq[event["seq"]]
        previous = event["seq"]
    assert ends(seen[-1])


TASK = st.tuples(st.integers(0, 60), st.integers(1, 6), st.integers(0, 15))
LEG = st.builds(
    Leg, st.sampled_from(["ws", "sse", "ndjson"]), st.booleans(), st.none() | st.integers(1, 10)
)
READER = st.tuples(st.floats(0, 0.2), st.lists(LEG, min_size=1, max_size=4))


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    tasks=st.lists(TASK, min_size=1, max_size=4),
    readers=st.lists(READER, min_size=1, max_size=4),
)
def test_every_reader_sees_each_session_event_once_in_log_order(
    server: RunningServer,
    tasks: list[tuple[int, int, int]],
    readers: list[tuple[float, list[Leg]]],
) -> None:
    """Random tasks joining, random readers resuming at random seqs on random channels, with
    snapshots: each sees every session event exactly once, in the session log's order."""
    with server.client() as client:
        session_id = new_session(client)["session_id"]
        with ThreadPoolExecutor(len(readers)) as pool:
            futures = [
                pool.submit(follow, server, session_id, delay, legs) for delay, legs in readers
            ]
            task_ids = []
            for pause_ms, n, interval_ms in tasks:
                time.sleep(pause_ms / 1000)
                response = call_in(
                    client, session_id, "countdown", [{"n": n, "interval": interval_ms / 1000}]
                )
                assert response.status_code == 202, response.text
                task_ids.append(response.json()["task_id"])
            for task_id in task_ids:
                finished(client, task_id)
            assert client.delete(f"/api/v1/sessions/{session_id}").status_code == 200
            views = [f.result(timeout=scaled(60)) for f in futures]
    log = session_log(server, session_id)
    assert log[-1]["type"] == "session.closed"
    for seen in views:
        check_reader(seen, log)
