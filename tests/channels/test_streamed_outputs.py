"""Streamed outputs over every channel: what each subscriber rebuilds equals the final Task.

A property test against a real server on each backbone: random skills interleave outputs and
appends across requests, while random subscribers join (from the start or with a snapshot),
drop after a random number of events and resume from the last seq they saw (with or without
a snapshot), each leg on a random channel (WebSocket, SSE, NDJSON). The outputs every
subscriber rebuilds from what it received equal the final Task's, character for character.
The server holds at most 4 outputs per request, so outputs leave the Task on the way.
"""

from __future__ import annotations

import asyncio
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

from skillwire.server import App, Context
from tests.channels.helpers import ndjson_events, sse_events
from tests.channels.reconstruct import TERMINAL, Reconstruction
from tests.conftest import ADMIN_KEY, BACKBONES, RunningServer, scaled, start_server
from tests.server.conftest import backbone_settings, finished

MAX_OUTPUTS = 4
Step = tuple[str, int, str]


def script_app() -> App:
    app = App("script")

    @app.skill(mode="long", max_requests=3)
    async def run(ctx: Context, steps: list[Step]) -> None:
        """Play ``steps``: ("out", _, text) a streamed text output, ("tick", i, _) an output
        with no string field, ("app", k, text) append to the k-th streamed output (mod how
        many), ("nap", ms, _) wait, ("res", _, text) set the result."""
        streamed: list[int] = []
        for op, number, text in steps:
            if op == "out":
                streamed.append(await ctx.output({"type": "text", "text": text}))
            elif op == "tick":
                await ctx.output({"type": "tick", "i": number})
            elif op == "app" and streamed:
                await ctx.append(streamed[number % len(streamed)], "text", text)
            elif op == "nap":
                await asyncio.sleep(number / 1000)
            elif op == "res":
                ctx.set_result({"text": text})

    return app


@pytest.fixture(scope="module", params=BACKBONES)
def script_server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    """One server per backbone with the script app, holding 4 outputs per request."""
    running = start_server(
        {
            "heartbeat_interval": 0.5,
            "rate_limit": "0",
            "task": {"max_outputs": MAX_OUTPUTS},
            **backbone_settings(request, request.param, db=2),
        },
        apps=[script_app()],
    )
    yield running
    running.stop()


# -- subscribers ---------------------------------------------------------------------------
@dataclass
class Leg:
    """One connection: its channel, whether it asks for a snapshot, and how many events it
    reads before dropping (None: to the end)."""

    channel: str
    snapshot: bool
    limit: int | None


def ws_events(
    server: RunningServer, task_id: str, after: int, snapshot: bool, limit: int | None
) -> list[dict[str, Any]]:
    """Events of one WebSocket subscription, until its end or ``limit`` events."""
    events: list[dict[str, Any]] = []
    with connect(
        f"{server.ws_url}/api/v1/ws",
        subprotocols=["skillwire.v1"],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        open_timeout=scaled(10),
    ) as conn:
        subscribe = {"op": "subscribe", "ref": "s", "task_id": task_id, "after": after}
        conn.send(json.dumps({**subscribe, "snapshot": snapshot}))
        while True:
            frame = conn.recv(timeout=scaled(20))
            assert isinstance(frame, str)
            for line in frame.split("\n"):
                message = json.loads(line)
                assert message["op"] != "error", message
                if message["op"] == "ended":
                    return events
                if message["op"] != "event":
                    continue
                event = message["event"]
                events.append(event)
                ends = event["type"] in TERMINAL or (
                    event["type"] == "task.snapshot" and event["data"]["finished_at"] is not None
                )
                if ends or (limit is not None and len(events) >= limit):
                    return events


def read_leg(server: RunningServer, task_id: str, after: int, leg: Leg) -> list[dict[str, Any]]:
    if leg.channel == "ws":
        return ws_events(server, task_id, after, leg.snapshot, leg.limit)
    params = {"after": str(after), **({"snapshot": "true"} if leg.snapshot else {})}
    if leg.channel == "sse":
        return sse_events(server, task_id, params=params, limit=leg.limit)
    return ndjson_events(server, task_id, params=params, limit=leg.limit)


def follow(server: RunningServer, task_id: str, delay: float, legs: list[Leg]) -> Reconstruction:
    """Join after ``delay`` s, then connect leg after leg (the last one reads to the end),
    each resuming from the last seq received."""
    time.sleep(delay)  # when this subscriber joins; nothing is asserted about the moment
    seen = Reconstruction()
    for leg in legs:
        for event in read_leg(server, task_id, seen.last_seq, leg):
            seen.apply(event)
        if seen.finished:
            break
    while not seen.finished:  # the legs ran out before the end: follow it to the end
        for event in read_leg(server, task_id, seen.last_seq, Leg("sse", False, None)):
            seen.apply(event)
    return seen


# -- the property --------------------------------------------------------------------------
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=5)
STEP = st.one_of(
    st.tuples(st.just("out"), st.just(0), TEXT),
    st.tuples(st.just("tick"), st.integers(0, 9), st.just("")),
    st.tuples(st.just("app"), st.integers(0, 5), TEXT),
    st.tuples(st.just("app"), st.integers(0, 5), TEXT),
    st.tuples(st.just("app"), st.integers(0, 5), TEXT),
    st.tuples(st.just("nap"), st.integers(1, 15), st.just("")),
    st.tuples(st.just("res"), st.just(0), TEXT),
)
LEG = st.builds(
    Leg,
    st.sampled_from(["ws", "sse", "ndjson"]),
    st.booleans(),
    st.none() | st.integers(1, 12),
)
SUBSCRIBER = st.tuples(st.floats(0, 0.15), st.lists(LEG, min_size=1, max_size=4))


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    requests=st.lists(st.lists(STEP, min_size=1, max_size=14), min_size=1, max_size=3),
    subscribers=st.lists(SUBSCRIBER, min_size=1, max_size=4),
)
def test_every_subscriber_rebuilds_the_final_outputs(
    script_server: RunningServer,
    requests: list[list[Step]],
    subscribers: list[tuple[float, list[Leg]]],
) -> None:
    """Random outputs and appends across requests, random subscribers joining, dropping and
    resuming on random channels, with and without snapshots: each rebuilds the final Task's
    outputs exactly (no event lost or repeated, appends applied once, in order)."""
    with script_server.client() as client:
        response = client.post(
            "/api/v1/apps/script/run",
            json={"requests": [{"steps": steps} for steps in requests]},
            headers={"Prefer": "respond-async"},
        )
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]
        with ThreadPoolExecutor(len(subscribers)) as pool:
            futures = [
                pool.submit(follow, script_server, task_id, delay, legs)
                for delay, legs in subscribers
            ]
            views = [f.result(timeout=scaled(60)) for f in futures]
        task = finished(client, task_id)
    assert task["status"] == "completed", task
    for view in views:
        assert view.final is not None
        assert view.final["last_seq"] == task["last_seq"]
        view.matches(task)
        view.matches(view.final)


@pytest.mark.parametrize("channel", ["ws", "sse", "ndjson"])
def test_unicode_line_separators_never_cut_a_frame(
    script_server: RunningServer, channel: str
) -> None:
    """Text holding U+2028, U+2029 and U+0085 reaches a reader that splits lines the Unicode
    way (httpx's iter_lines) intact: the server escapes them in every event's JSON."""
    text = "a\u2028b\x85c\u2029d"
    steps = [("out", 0, text[:3]), ("app", 0, text[3:]), ("tick", 1, "")]
    with script_server.client() as client:
        response = client.post(
            "/api/v1/apps/script/run",
            json={"requests": [{"steps": steps}]},
            headers={"Prefer": "respond-async"},
        )
        task_id = response.json()["task_id"]
        finished(client, task_id)
    seen = Reconstruction()
    for event in read_leg(script_server, task_id, 0, Leg(channel, False, None)):
        seen.apply(event)
    assert seen.requests[0].outputs[0] == {"type": "text", "text": text}
