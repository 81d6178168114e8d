"""Scenario L (the LLM bridge): bench/llm's run, one row per path, in the suite's table.

``python -m bench.llm.run`` starts its own OpenAI-compatible upstream (every stream emits
``--l-rate`` tokens/s, each token the time it was sent), a ``skillwire serve`` gateway
(memory backbone) with that upstream configured, and Python readers; it reads each stream
straight from the upstream (``direct``, the reference), then through ``/v1/chat/completions``
(and ``llm/chat`` over the WebSocket, with ``--l-modes``). This module runs it as one child
process (stopped by its PID; it stops its own children on SIGTERM) and turns its JSON into
rows: tokens delivered and lost, latency per token (and what the gateway adds to the direct
path's), the gateway's CPU per token and RSS per stream.
"""

from __future__ import annotations

import json
from typing import Any

from .environment import ROOT, SW_PY, log
from .processes import Proc
from .session import Bench

LABELS = {
    "direct": "L upstream direct",
    "openai": "L /v1/chat/completions",
    "ws": "L llm/chat WS",
}


def llm_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The suite's rows from bench/llm/run.py's JSON report."""
    rows = []
    for r in report["runs"]:
        mode = r["mode"]
        seconds = r.get("seconds") or 0.0
        row: dict[str, Any] = {
            "scenario": "L",
            "label": f"{LABELS.get(mode, 'L ' + mode)} x{r['streams']}",
            "system": "upstream" if mode == "direct" else "skillwire-memory",
            "transport": mode,
            "clients": r["streams"],
            "rate": report["rate"],
            "expected": r["expected"],
            "delivered": r["tokens"],
            "lost": r["expected"] - r["tokens"],
            "stream_errors": r["errors"],
            "events_per_s": round(r["tokens"] / seconds, 1) if seconds else 0.0,
            "span_s": seconds,
            "p50_ms": r["p50_ms"],
            "p99_ms": r["p99_ms"],
            "added_p50_ms": _round(r.get("added_p50_ms")),
            "added_p99_ms": _round(r.get("added_p99_ms")),
            "cpu_us_per_token": r.get("gateway_cpu_us_per_token"),
            "rss_per_stream_kib": r.get("gateway_rss_per_stream_kib"),
        }
        if r.get("first_error"):
            row["loader_errors"] = [r["first_error"]]
        rows.append(row)
    return rows


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def scenario_l(bench: Bench) -> None:
    args = bench.args
    modes = "direct," + ",".join(m for m in args.l_modes.split(",") if m and m != "direct")
    log(
        f"L  LLM bridge: {args.l_streams} streams at {args.l_rate:g} tokens/s for "
        f"{args.l_seconds:g} s, paths {modes}"
    )
    out = bench.tmp / "llm.json"
    cmd = [
        str(SW_PY), "-m", "bench.llm.run", "--streams", str(args.l_streams),
        "--rate", str(args.l_rate), "--seconds", str(args.l_seconds),
        "--ramp", str(args.l_ramp), "--modes", modes, "--out", str(out),
        "--logdir", str(bench.tmp),
    ]  # fmt: skip
    proc = Proc("llm-bench", cmd, env={"PYTHONPATH": str(ROOT)}, logdir=bench.tmp)
    # each path: the ramp, the streams, the readers' start; bounded like every other run
    budget = len(modes.split(",")) * (args.l_ramp + args.l_seconds + 30) + args.run_timeout
    try:
        proc.popen.wait(budget)
        if proc.popen.returncode != 0:
            raise RuntimeError(f"bench.llm.run exited {proc.popen.returncode}: {proc.tail()}")
        rows = llm_rows(json.loads(out.read_text()))
    except Exception as exc:  # one failed run must not sink the whole suite
        rows = [
            {
                "scenario": "L",
                "label": f"L LLM bridge x{args.l_streams}",
                "system": "skillwire-memory",
                "transport": "openai",
                "clients": args.l_streams,
                "error": f"{type(exc).__name__}: {exc}"[:500],
            }
        ]
        log(f"    ! L: {rows[0]['error']}")
    finally:
        proc.stop()
    for row in rows:
        bench.record(row)
