"""The whole suite: its redis-server, the scenarios (--repeat times), the profile, the meta.

Whatever happens, every process the suite started is stopped and the logs are kept next to
the JSON before the scratch directory goes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import time
from pathlib import Path
from typing import Any

from .environment import log
from .figures import collapse_repeats
from .llm import scenario_l
from .processes import Proc
from .profiling import profile_r, profile_runs
from .provenance import machine, source_hash, versions
from .redis_server import Redis
from .scenarios import (
    Plan,
    scenario_a,
    scenario_a_window,
    scenario_b,
    scenario_c,
    scenario_d,
    scenario_e,
    scenario_r,
    scenario_t,
)
from .session import Bench
from .sessions import scenario_s


def run_suite(args: argparse.Namespace) -> dict[str, Any]:
    bench = Bench(args)
    code_at_start = source_hash()
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    plan = Plan.from_args(args)
    only = plan.only
    needs_redis = "redis" in plan.backbones or plan.baselines
    started = time.monotonic()
    if (
        needs_redis
        and not ({"A", "B", "C", "D", "P"} & only)
        and not ({"T", "S"} & only and "redis" in plan.backbones)
    ):
        needs_redis = False
    if {"R", "PR"} & only or ("A" in only and args.aw_k):
        needs_redis = True  # the relayed channels are Redis pub/sub, whatever the backbone
    if needs_redis:
        bench.redis = Redis(bench.tmp)
    try:
        for rep in range(max(1, args.repeat)):
            if args.repeat > 1:
                log(f"== repeat {rep + 1} of {args.repeat}")
            if "A" in only:
                scenario_a(bench, plan)
                if args.aw_k:
                    scenario_a_window(bench, plan)
            if "B" in only:
                scenario_b(bench, plan)
            if "C" in only:
                scenario_c(bench, plan)
            if "D" in only and "redis" in plan.backbones:
                scenario_d(bench, plan, first=rep == 0)
            if "E" in only:
                scenario_e(bench)
            if "T" in only:
                scenario_t(bench, plan)
            if "R" in only:
                scenario_r(bench, plan)
            if "S" in only:
                scenario_s(bench, plan.backbones)
            if "L" in only:
                scenario_l(bench)
        bench.runs = collapse_repeats(bench.runs)
        if args.profile or "P" in only:
            profile_runs(bench, args, plan.backbones)
        if args.profile or "PR" in only:
            profile_r(bench, args, plan.backbones)
    finally:
        Proc.stop_all()
        logs = keep_logs(bench.tmp, Path(args.json))
        shutil.rmtree(bench.tmp, ignore_errors=True)
    elapsed = time.monotonic() - started
    return {
        "meta": {
            "date": started_at,
            "elapsed_s": round(elapsed, 1),
            "machine": machine(),
            "versions": versions(),
            "args": vars(args),
            "logs": str(logs) if logs else None,
            "source_hash": code_at_start,
            "source_changed_during_run": source_hash() != code_at_start,
        },
        "runs": bench.runs,
        "d_trace": bench.d_trace,
        "profiles": bench.profiles,
    }


def keep_logs(tmp: Path, json_path: Path) -> Path | None:
    """The processes' logs go next to the JSON (<name>-logs/, replaced each run)."""
    logs = json_path.resolve().with_name(json_path.stem + "-logs")
    marker = logs / ".bench-logs"
    if logs.exists():
        if not marker.exists():
            return None  # not ours: leave it alone
        shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True, exist_ok=True)
    marker.touch()
    for path in tmp.glob("*.log"):
        if path.stat().st_size:
            shutil.copy2(path, logs / path.name)
    for path in tmp.glob("*.txt"):
        shutil.copy2(path, logs / path.name)
    return logs
