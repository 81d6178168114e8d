"""The Node load generator (bench/loader/load.js), split over one or more processes.

Each process gets its share of the connections in a JSON config and talks JSON lines on
stdout ("ready", "progress", "result") and plain commands on stdin ("go", "stop", "close").
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from .environment import LOADER
from .processes import Proc
from .session import Bench


def start_loaders(
    bench: Bench, base: dict[str, Any], conns: list[dict[str, Any]], count: int
) -> list[Proc]:
    procs = []
    count = max(1, min(count, len(conns) or 1))
    for k in range(count):
        cfg = dict(base)
        cfg["conns"] = conns[k::count]
        cfg["lat_file"] = str(bench.tmp / f"lat-{secrets.token_hex(4)}.bin")
        cfg.setdefault("hard_timeout_s", bench.args.run_timeout + 120)
        path = bench.tmp / f"loader-{secrets.token_hex(4)}.json"
        path.write_text(json.dumps(cfg))
        procs.append(
            Proc(
                f"loader{k}",
                ["node", str(LOADER), str(path)],
                logdir=bench.tmp,
                stdin=True,
                capture=True,
            )
        )
    return procs


def loader_count(bench: Bench, conns: int) -> int:
    # one Node process tops out near a core: from 100 connections on, two share the load
    chosen: int = bench.args.loaders  # --loaders; 0: pick by size
    if chosen:
        return chosen
    return 2 if conns >= 100 else 1
