"""Scenario S's loader (bench/run --only S): WebSocket followers of skillwire sessions.

Reads a JSON config (its path is the one argument): ``port``, ``key``, ``sessions`` (one
session id per follower; the same id repeated for many followers of one session) and
``run_timeout_s``. Opens every follower (100 at a time), subscribes it to its session, prints
``{"event": "ready", ...}``; then each follower reads session events until ``session.closed``
and the process prints ``{"event": "result", ...}``: per session the seq of its
``session.closed`` and how many of its followers saw exactly 1..that seq, in order, once each;
received, unique and duplicate counts; the process's own CPU%. The bench (harness/sessions.py)
drives the sessions over REST meanwhile and checks each ``session.closed`` seq against the
``last_seq`` its DELETE answered. Runs in skillwire's .venv (websockets).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def cpu_ticks() -> int:
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


class Follower:
    """One WebSocket following one session; what it received, in order."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.seqs: list[int] = []
        self.closed_seq: int | None = None
        self.error: str | None = None

    def complete(self) -> bool:
        last = self.closed_seq
        return last is not None and self.seqs == list(range(1, last + 1))


async def open_follower(url: str, key: str, follower: Follower) -> ClientConnection:
    conn = await connect(
        url,
        subprotocols=["skillwire.v1"],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {key}"},
        max_size=None,
        open_timeout=60,
    )
    await conn.send(json.dumps({"op": "subscribe", "ref": "s", "session_id": follower.session_id}))
    while True:
        frame = await asyncio.wait_for(conn.recv(), 60)
        for line in str(frame).split("\n"):
            message = json.loads(line)
            if message.get("op") == "subscribed":
                return conn
            if message.get("op") == "error":
                raise RuntimeError(f"subscribe: {message}")
            if message.get("op") == "session_event":  # the session's history, if any
                follow_event(follower, message)


def follow_event(follower: Follower, message: dict[str, Any]) -> None:
    event = message["event"]
    follower.seqs.append(int(event["seq"]))
    if event["type"] == "session.closed":
        follower.closed_seq = int(event["seq"])


async def read_until_closed(conn: ClientConnection, follower: Follower, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    try:
        while follower.closed_seq is None:
            frame = await asyncio.wait_for(conn.recv(), max(0.1, deadline - time.monotonic()))
            for line in str(frame).split("\n"):
                message = json.loads(line)
                if message.get("op") == "session_event":
                    follow_event(follower, message)
    except Exception as exc:  # a timeout or a closed connection: recorded, the others go on
        follower.error = f"{type(exc).__name__}: {exc}"[:200]
    finally:
        await conn.close()


def summary(followers: list[Follower]) -> dict[str, Any]:
    closed: dict[str, int | None] = {}
    complete: dict[str, int] = {}
    for f in followers:
        closed.setdefault(f.session_id, f.closed_seq)
        if f.closed_seq is not None:
            closed[f.session_id] = f.closed_seq
        complete[f.session_id] = complete.get(f.session_id, 0) + f.complete()
    received = sum(len(f.seqs) for f in followers)
    unique = sum(len(set(f.seqs)) for f in followers)
    return {
        "followers": len(followers),
        "closed_seq": closed,
        "complete": complete,
        "received": received,
        "unique": unique,
        "dups": received - unique,
        "errors": [f.error for f in followers if f.error][:5],
    }


async def main(config: dict[str, Any]) -> None:
    url = f"ws://127.0.0.1:{config['port']}/api/v1/ws"
    followers = [Follower(s) for s in config["sessions"]]
    gate = asyncio.Semaphore(100)

    async def opened(f: Follower) -> ClientConnection | None:
        async with gate:
            try:
                return await open_follower(url, config["key"], f)
            except Exception as exc:  # counted as failed; the run goes on with the others
                f.error = f"connect: {type(exc).__name__}: {exc}"[:200]
                return None

    t0 = time.monotonic()
    conns = await asyncio.gather(*(opened(f) for f in followers))
    failed = sum(c is None for c in conns)
    say("ready", ready=len(followers) - failed, failed=failed, connect_s=time.monotonic() - t0)
    ticks0, started = cpu_ticks(), time.monotonic()
    await asyncio.gather(
        *(
            read_until_closed(c, f, config["run_timeout_s"])
            for c, f in zip(conns, followers, strict=True)
            if c is not None
        )
    )
    wall = max(time.monotonic() - started, 1e-3)
    cpu_pct = round(100 * (cpu_ticks() - ticks0) / CLK_TCK / wall, 1)
    say("result", cpu_pct=cpu_pct, **summary(followers))


if __name__ == "__main__":
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))
