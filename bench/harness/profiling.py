"""The profile (``--profile``, ``--only P``): where the server's CPU time and memory go.

py-spy samples the gateway under scenario A (K=1000 WebSocket subscribers) and E (quick
calls); tracemalloc (bench/tools/gcstats, switched on by BENCH_TRACEMALLOC_OUT) compares
allocation sites before and after opening scenario C's idle WebSockets.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import time
from pathlib import Path
from typing import Any

from .environment import BENCH, KEY, ROOT, log
from .loaders import loader_count, start_loaders
from .processes import Proc
from .publisher import Relay
from .pyspy import PySpyHook, top_frames
from .runs import call_run, stream_run
from .session import Bench
from .systems import http_json, start_skillwire


def short_path(path: str) -> str:
    path = re.sub(r"^.*/site-packages/", "", path)
    path = re.sub(r"^.*/lib/python3\.\d+/", "", path)
    return path.removeprefix(str(ROOT) + "/").removeprefix("server/skillwire/")


def memtrace_run(bench: Bench, conns_n: int, what: str = "ws") -> dict[str, Any]:
    """Scenario C under tracemalloc: which allocation sites grow per idle WebSocket ("ws", all
    following one task), per idle WebSocket following its own running task ("ws+task", C-task)
    or per running task nobody follows ("task", C-idle-task)."""
    out_file = bench.tmp / f"tracemalloc-{secrets.token_hex(3)}.txt"
    system = start_skillwire(
        bench,
        "memory",
        concurrency=conns_n + 64,
        extra_env={"BENCH_TRACEMALLOC_OUT": str(out_file)},
    )
    procs: list[Proc] = []
    try:
        start_file = bench.tmp / f"never-{secrets.token_hex(4)}"
        idle_task = {"n": 1, "start_file": str(start_file), "max_wait": 300}

        def create_task() -> str:
            _, body = http_json(
                system.port,
                "POST",
                "/api/v1/apps/bench/emit",
                {"requests": [idle_task]},
                {"Prefer": "respond-async"},
            )
            return str(json.loads(body)["task_id"])

        target = create_task()
        spec: dict[str, Any] = {"call": idle_task} if what == "ws+task" else {"target": target}
        base = {
            "system": "skillwire",
            "transport": "ws",
            "port": system.port,
            "key": KEY,
            "terminal": True,
            "expect": 1,
            "idle": True,
            "connect_parallel": 100,
            "run_timeout_s": 600,
            "app": "bench",
            "skill": "emit",
        }
        warm = start_loaders(bench, base, [spec] * 20, 1)
        warm[0].expect("ready", 60)
        warm[0].send("close")
        warm[0].stop()
        for _ in range(20 if what == "task" else 0):
            create_task()
        time.sleep(1.0)
        os.kill(system.server.pid, signal.SIGUSR1)  # baseline snapshot
        time.sleep(1.0)
        before = system.server.rss_kib()
        if what == "task":
            ready = sum(bool(create_task()) for _ in range(conns_n))
        else:
            procs = start_loaders(bench, base, [spec] * conns_n, loader_count(bench, conns_n))
            ready = sum(p.expect("ready", 180)["ready"] for p in procs)
        time.sleep(1.5)
        after = system.server.rss_kib()
        os.kill(system.server.pid, signal.SIGUSR1)  # compare and write
        deadline = time.monotonic() + 60
        while not out_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        rows = []
        traced = 0
        for line in out_file.read_text().splitlines():
            size, count, site = line.split(" ", 2)
            traced += int(size)
            rows.append(
                (short_path(site), round(int(size) / ready, 1), round(int(count) / ready, 2))
            )
        return {
            "what": what,
            "conns": ready,
            "rss_per_conn_kib": round((after - before) / ready, 1),
            "traced_per_conn_kib": round(traced / ready / 1024, 1),
            "top": rows[:25],
            "note": "tracemalloc on (slower, and RSS includes its own bookkeeping)",
        }
    finally:
        for p in procs:
            p.send("close")
            p.stop(grace=2.0)
        system.stop()


def profile_r(bench: Bench, args: argparse.Namespace, backbones: list[str]) -> None:
    """R's closed loop (--r-tasks, --r-events, --r-window) under py-spy, raw stacks, per backbone:
    where each microsecond of a relayed event goes (docs/performance.md)."""
    pyspy = BENCH / ".venv-baselines" / "bin" / "py-spy"
    if not pyspy.exists():
        log("    ! py-spy not installed in bench/.venv-baselines; skipping the R profile")
        return
    out_dir = Path(args.json).resolve().parent
    for backbone in backbones:
        name = f"skillwire-{backbone}"
        raw = out_dir / f"profile-R-{backbone}.txt"
        log(f"P  profiling {name} under R (closed loop, {args.r_tasks} tasks)")
        bench.profile_hook = PySpyHook(pyspy, "raw", raw)
        try:
            run = stream_run(
                bench, "P", name, "ws", args.r_tasks, args.r_events, 0.0, own_task=True,
                relay=Relay.closed_loop(args.r_window), label=f"profile R x{args.r_tasks}",
            )  # fmt: skip
        finally:
            bench.profile_hook = None
        bench.runs.remove(run)
        if raw.exists():
            bench.profiles[f"{name} R"] = {
                "raw": str(raw),
                "run": {
                    k: run.get(k)
                    for k in ("events_per_s", "lost", "p50_ms", "p99_ms", "cpu_us_per_delivery")
                },
                **top_frames(raw),
            }
        worker_raw = raw.with_stem(raw.stem + "-worker0")  # the redis backbone's worker
        if worker_raw.exists():
            bench.profiles[f"{name} R worker0"] = {
                "raw": str(worker_raw),
                "run": bench.profiles.get(f"{name} R", {}).get("run"),
                **top_frames(worker_raw),
            }
    if args.c_tasks:
        n = min(args.c_tasks, 1000)
        for what, title in (("ws+task", "idle WebSocket with its own task"), ("task", "idle task")):
            log(f"P  tracemalloc: memory per {title} (skillwire-memory, {n})")
            try:
                bench.profiles[f"memory per {title}"] = memtrace_run(bench, n, what)
            except Exception as exc:
                log(f"    ! tracemalloc run: {type(exc).__name__}: {exc}")


def profile_runs(bench: Bench, args: argparse.Namespace, backbones: list[str]) -> None:
    """A K=1000 WS with py-spy on the server: collapsed stacks + the top frames."""
    pyspy = BENCH / ".venv-baselines" / "bin" / "py-spy"
    if not pyspy.exists():
        log("    ! py-spy not installed in bench/.venv-baselines; skipping the profile")
        return
    bench.profiles = {}
    out_dir = Path(args.json).resolve().parent
    for backbone in backbones:
        name = f"skillwire-{backbone}"
        raw = out_dir / f"profile-A1000-ws-{backbone}.txt"
        svg = out_dir / f"profile-A1000-ws-{backbone}.svg"
        for fmt, path in (("raw", raw), ("flamegraph", svg)):
            log(f"P  profiling {name} under A WS K=1000 ({fmt})")
            hook = PySpyHook(pyspy, fmt, path)
            bench.profile_hook = hook
            try:
                # long enough for a few thousand samples (1M deliveries)
                n = 1000
                run = stream_run(
                    bench,
                    "P",
                    name,
                    "ws",
                    1000,
                    n,
                    0.0,
                    own_task=False,
                    label=f"profile ({fmt}) WS K=1000",
                )
            finally:
                bench.profile_hook = None
            bench.runs.remove(run)
            if fmt == "raw" and raw.exists():
                bench.profiles[name] = {
                    "raw": str(raw),
                    "svg": str(svg),
                    "run": {
                        k: run.get(k)
                        for k in ("events_per_s", "lost", "p50_ms", "p99_ms", "cpu_pct")
                    },
                    **top_frames(raw),
                }
    log("P  profiling skillwire-memory under E (quick calls, c=1)")
    raw = out_dir / "profile-E-memory.txt"
    system = start_skillwire(bench, "memory", apps=False)
    bench.profile_hook = PySpyHook(pyspy, "raw", raw)
    try:
        run = call_run(bench, "P", system, 1, max(args.e_seconds, 6.0), "profile E c=1")
        bench.runs.remove(run)
        if raw.exists():
            bench.profiles["skillwire-memory E"] = {
                "raw": str(raw),
                "run": {k: run.get(k) for k in ("calls_per_s", "p50_ms", "p99_ms", "cpu_pct")},
                **top_frames(raw),
            }
    finally:
        bench.profile_hook = None
        system.stop()
    log("P  tracemalloc: memory per idle WebSocket (skillwire-memory)")
    try:
        bench.profiles["memory per idle WebSocket"] = memtrace_run(bench, min(args.c_conns, 2000))
    except Exception as exc:
        log(f"    ! tracemalloc run: {type(exc).__name__}: {exc}")
