"""Scenario S (sessions, issue 16): one session followed by many, and many sessions followed
by one each, on each backbone.

The followers are bench/tools/session_followers.py processes (skillwire's .venv: websockets),
split like the Node loaders; this module creates the sessions, starts the ``demo/countdown``
tasks in them over REST once every follower is subscribed, waits for the tasks, closes the
sessions and checks that every follower saw every session event exactly once, to
``session.closed`` (whose seq must be the ``last_seq`` the DELETE answered).
"""

from __future__ import annotations

import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .environment import BENCH, KEY, SW_PY, log
from .loaders import loader_count
from .processes import CLK_TCK, Proc
from .runs import scan_into
from .session import Bench
from .systems import System, http_json, start_skillwire

FOLLOWERS = BENCH / "tools" / "session_followers.py"
TERMINAL = {"completed", "partial", "failed", "cancelled"}


def post_json(port: int, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    status, raw = http_json(port, "POST", path, body, headers)
    if status not in (200, 201, 202):
        raise RuntimeError(f"POST {path}: HTTP {status} {raw[:200]!r}")
    return json.loads(raw)


def countdown(port: int, session_id: str, ticks: int) -> str:
    """Start a ``demo/countdown`` in the session (10 ms a tick); its task id."""
    body = {"requests": [{"n": ticks, "interval": 0.01}], "session_id": session_id}
    task_id: str = post_json(
        port, "/api/v1/apps/demo/countdown", body, {"Prefer": "respond-async"}
    )["task_id"]
    return task_id


def wait_task(port: int, task_id: str, deadline: float) -> None:
    """Until the task is terminal (long polls shorter than http_json's 30 s socket timeout)."""
    while time.monotonic() < deadline:
        status, raw = http_json(port, "GET", f"/api/v1/tasks/{task_id}?wait=20")
        if status == 200 and json.loads(raw)["status"] in TERMINAL:
            return
    raise TimeoutError(f"task {task_id} not finished in time")


def close_session(port: int, session_id: str) -> int:
    """DELETE the session; the seq of its ``session.closed`` event."""
    status, raw = http_json(port, "DELETE", f"/api/v1/sessions/{session_id}")
    if status != 200:
        raise RuntimeError(f"DELETE session: HTTP {status} {raw[:200]!r}")
    return int(json.loads(raw)["last_seq"])


def session_run(
    bench: Bench, system: System, sessions: int, followers: int, tasks: int, label: str
) -> dict[str, Any]:
    """``sessions`` sessions, each followed by ``followers`` WebSockets and fed by ``tasks``
    countdowns of ``--s-ticks`` ticks (S: 1 session, N followers, 10 tasks; S-many: N
    sessions, 1 follower and 1 task each), on a running ``system``."""
    args = bench.args
    run: dict[str, Any] = {
        "scenario": "S" if sessions == 1 else "S-many",
        "label": label,
        "system": system.name,
        "transport": "ws",
        "clients": sessions * followers,
        "sessions": sessions,
        "tasks_per_session": tasks,
    }
    procs: list[Proc] = []
    window = (0.0, 0.0)
    try:
        port = system.port
        if system.note:
            run["note"] = system.note
        with ThreadPoolExecutor(16) as pool:
            ids = list(
                pool.map(
                    lambda _: post_json(port, "/api/v1/sessions", {})["session_id"],
                    range(sessions),
                )
            )
        targets = [s for s in ids for _ in range(followers)]
        count = loader_count(bench, len(targets))
        for k in range(min(count, len(targets))):
            path = bench.tmp / f"followers-{secrets.token_hex(4)}.json"
            config = {
                "port": port,
                "key": KEY,
                "sessions": targets[k::count],
                "run_timeout_s": args.run_timeout,
            }
            path.write_text(json.dumps(config))
            procs.append(
                Proc(
                    f"followers{k}",
                    [str(SW_PY), str(FOLLOWERS), str(path)],
                    logdir=bench.tmp,
                    capture=True,
                )
            )
        readies = [p.expect("ready", args.connect_timeout) for p in procs]
        run["connect_s"] = round(max(r["connect_s"] for r in readies), 1)
        run["connect_failed"] = sum(r["failed"] for r in readies)
        time.sleep(args.settle)
        cpu0 = {name: p.cpu_ticks() for name, p in system.procs.items()}
        t0 = time.monotonic()
        window = (time.time(), 0.0)
        deadline = t0 + args.run_timeout

        def converse(session_id: str) -> int:
            started = [countdown(port, session_id, args.s_ticks) for _ in range(tasks)]
            for task_id in started:
                wait_task(port, task_id, deadline)
            return close_session(port, session_id)

        if sessions == 1:  # the tasks of the one session start together
            with ThreadPoolExecutor(max(1, tasks)) as pool:
                started = list(
                    pool.map(lambda _: countdown(port, ids[0], args.s_ticks), range(tasks))
                )
                list(pool.map(lambda t: wait_task(port, t, deadline), started))
            last = {ids[0]: close_session(port, ids[0])}
        else:
            with ThreadPoolExecutor(32) as pool:
                last = dict(zip(ids, pool.map(converse, ids), strict=True))
        results = [p.expect("result", args.run_timeout + 30) for p in procs]
        wall = time.monotonic() - t0
        window = (window[0], time.time())
        cpu1 = {name: p.cpu_ticks() for name, p in system.procs.items()}
        session_figures(run, results, last, followers, wall)
        server_s = sum(cpu1[n] - cpu0[n] for n in cpu0) / CLK_TCK
        run["cpu_pct"] = {n: round(100 * (cpu1[n] - cpu0[n]) / CLK_TCK / wall, 1) for n in cpu0}
        run["server_cpu_s"] = round(server_s, 2)
        if run["delivered"]:
            run["cpu_us_per_delivery"] = round(server_s * 1e6 / run["delivered"], 1)
    except Exception as exc:  # one failed run must not sink the whole suite
        run["error"] = f"{type(exc).__name__}: {exc}"
        log(f"    ! {label} {system.name}: {run['error']}")
    finally:
        for p in procs:
            p.stop(grace=2.0)
        scan_into(run, system, *window)
    return bench.record(run)


def session_figures(
    run: dict[str, Any],
    results: list[dict[str, Any]],
    last: dict[str, int],
    followers: int,
    wall: float,
) -> None:
    """Delivered, lost, duplicates and the exactly-once count from the followers' results;
    a follower counts only if its session's ``session.closed`` had the DELETE's seq."""
    closed: dict[str, int | None] = {}
    complete: dict[str, int] = {}
    for r in results:
        for sid, seq in r["closed_seq"].items():
            if seq is not None or sid not in closed:
                closed[sid] = seq
        for sid, n in r["complete"].items():
            complete[sid] = complete.get(sid, 0) + n
    received = sum(r["received"] for r in results)
    unique = sum(r["unique"] for r in results)
    expected = sum(seq * followers for seq in last.values())
    run.update(
        expected=expected,
        delivered=unique,
        received=received,
        lost=expected - unique,
        dups=received - unique,
        exactly_once=sum(n for sid, n in complete.items() if closed.get(sid) == last.get(sid)),
        session_events=[min(last.values()), max(last.values())] if last else [],
        span_s=round(wall, 3),
        events_per_s=round(unique / wall, 1) if wall > 0 else 0.0,
        loader_cpu_pct=[round(r["cpu_pct"] or 0, 1) for r in results],
        loader_errors=[e for r in results for e in r["errors"]][:5],
    )


def scenario_s(bench: Bench, backbones: list[str]) -> None:
    """S: one session with N followers and ``--s-tasks`` countdowns, then N sessions with one
    follower and one countdown each, on one server per backbone (skillwire only: no baseline
    has sessions)."""
    args = bench.args
    log(
        f"S  sessions: one session to {args.s_followers} followers ({args.s_tasks} tasks), "
        f"{args.s_sessions} sessions with one follower each"
    )
    for backbone in backbones:
        name = f"skillwire-{backbone}"
        concurrency = max(args.s_tasks, args.s_sessions) + 64
        try:
            system = start_skillwire(bench, backbone, concurrency=concurrency, apps=False)
        except Exception as exc:  # recorded as the rows' error; the suite goes on
            for label in labels(args):
                error = f"{type(exc).__name__}: {exc}"
                bench.record(
                    {
                        "scenario": "S",
                        "label": label,
                        "system": name,
                        "transport": "ws",
                        "error": error,
                    }
                )
            continue
        try:
            if args.s_followers:
                session_run(bench, system, 1, args.s_followers, args.s_tasks, labels(args)[0])
            if args.s_sessions:
                session_run(bench, system, args.s_sessions, 1, 1, labels(args)[-1])
        finally:
            system.stop()


def labels(args: Any) -> list[str]:
    return [
        *([f"S one session K={args.s_followers}"] if args.s_followers else []),
        *([f"S sessions x{args.s_sessions}"] if args.s_sessions else []),
    ]
