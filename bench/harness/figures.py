"""Figures from the loaders' results: delivery counts, rates, latency percentiles, repeats."""

from __future__ import annotations

import array
import os
from pathlib import Path
from typing import Any

from .targets import PASS_FIELDS


def stream_figures(run: dict[str, Any], results: list[dict[str, Any]]) -> None:
    received = sum(r["received"] for r in results)
    expected = sum(r["expected"] for r in results)
    firsts = [r["first_t_ms"] for r in results if r["first_t_ms"]]
    lasts = [r["last_recv_ms"] for r in results if r["last_recv_ms"]]
    span = (max(lasts) - min(firsts)) / 1000 if firsts and lasts else 0.0
    run.update(
        expected=expected,
        delivered=received,
        lost=expected - received,
        dups=sum(r["dups"] for r in results),
        gaps=sum(r["gaps"] + r["seq_gaps"] for r in results),
        reconnects=sum(r["reconnects"] for r in results),
        retries=sum(r.get("retries", 0) for r in results),
        span_s=round(span, 3),
        events_per_s=round(received / span, 1) if span > 0 else 0.0,
        loader_errors=[e for r in results for e in r["errors"]][:5],
        why=sorted({r["why"] for r in results}),
    )
    lat = latencies(results)
    run.update(percentiles(lat))


def latencies(results: list[dict[str, Any]]) -> list[float]:
    values = array.array("d")
    for r in results:
        path = r.get("lat_file")
        if path and os.path.exists(path):
            values.frombytes(Path(path).read_bytes())
    return sorted(values)


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None, "samples": 0}

    def at(q: float) -> float:
        return round(values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))], 2)

    return {
        "p50_ms": at(0.50),
        "p99_ms": at(0.99),
        "max_ms": round(values[-1], 2),
        "samples": len(values),
    }


def collapse_repeats(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """With --repeat N: one row per measurement, the median of its N runs (all N kept in it)."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for run in runs:
        key = (
            run["scenario"],
            run["label"],
            run["system"],
            run.get("transport"),
            run.get("clients"),
        )
        groups.setdefault(key, []).append(run)
    out = []
    for group in groups.values():
        if len(group) == 1:
            out.append(group[0])
            continue
        metric, lower_better = {
            "A-lat": ("p99_ms", True),
            "C": ("rss_per_conn_kib", True),
            "C-task": ("rss_per_conn_kib", True),
            "C-idle-task": ("rss_per_task_kib", True),
            "R-rate": ("p99_ms", True),
            "D": ("calls_per_s", False),
            "E": ("p50_ms", True),
        }.get(group[0]["scenario"], ("events_per_s", False))
        ok = sorted(
            (r for r in group if "error" not in r and r.get(metric) is not None),
            key=lambda r: r[metric],
            reverse=not lower_better,
        )
        keep = dict(ok[(len(ok) - 1) // 2]) if ok else dict(group[-1])
        keep["repeats"] = {
            metric: [r.get(metric) for r in group],
            "lost": [r.get("lost") for r in group],
            "errors": [r["error"] for r in group if "error" in r],
        }
        keep["lost"] = max((r.get("lost") or 0) for r in group)  # a loss in any repeat counts
        # each pass's own figures, in pass order: the targets compare pass k with the
        # baseline's pass k, taken minutes apart (harness/targets.py)
        keep["passes"] = [
            {k: r[k] for k in (*PASS_FIELDS, "error") if r.get(k) is not None} for r in group
        ]
        out.append(keep)
    return out
