"""What the suite prints and writes: progress lines, ratios, the table, the targets, the report."""

from __future__ import annotations

import argparse
from typing import Any

from .options import csv_ints
from .targets import issue18


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.2f}"
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def progress_line(run: dict[str, Any]) -> str | None:
    """One line per finished run while the suite goes on (a failed run already said why)."""
    if "error" in run:
        return None
    if run["scenario"] == "C-idle-task":
        return (
            f"    {run['label']:<28} {run['system']:<18} {run.get('rss_per_task_kib')} KiB/task "
            f"({run.get('ready')} running, created in {run.get('connect_s', 0):.1f}s)"
        )
    if run["scenario"] in ("C", "C-task"):
        return (
            f"    {run['label']:<28} {run['system']:<18} {run.get('rss_per_conn_kib')} KiB/conn "
            f"({run.get('ready')} open, connect {run.get('connect_s', 0):.1f}s)"
        )
    if run["scenario"] in ("S", "S-many"):
        return (
            f"    {run['label']:<28} {run['system']:<18} {run['events_per_s']:>9,.0f} deliveries/s "
            f"exactly once {run['exactly_once']}/{run['clients']} lost {run['lost']} "
            f"dups {run['dups']}  server CPU {run.get('cpu_us_per_delivery')} us/delivery  "
            f"loader CPU {run['loader_cpu_pct']}%"
        )
    if run["scenario"] == "L":
        return (
            f"    {run['label']:<28} {run['system']:<18} {run['events_per_s']:>9,.0f} tokens/s "
            f"p50 {fmt_ms(run.get('p50_ms'))} p99 {fmt_ms(run.get('p99_ms'))} ms "
            f"lost {run['lost']}"
            + (
                f" (added p99 {fmt_ms(run.get('added_p99_ms'))} ms)  gateway CPU "
                f"{run.get('cpu_us_per_token')} us/token  RSS {run.get('rss_per_stream_kib')} KiB/stream"
                if run["system"] != "upstream"
                else ""
            )
        )
    if "calls_per_s" in run:
        return (
            f"    {run['label']:<28} {run['system']:<18} {run['calls_per_s']:>9,.0f} calls/s "
            f"p50 {fmt_ms(run.get('p50_ms'))} p99 {fmt_ms(run.get('p99_ms'))} ms  failed {run['lost']}"
        )
    if "deltas_per_s" in run:
        return (
            f"    {run['label']:<28} {run['system']:<18} {run['deltas_per_s']:>9,.0f} deltas/s "
            f"({run['events_per_s']:,.0f} words/s) p50 {fmt_ms(run.get('p50_ms'))} "
            f"p99 {fmt_ms(run.get('p99_ms'))} ms lost {run['lost']}  "
            f"CPU {run.get('cpu_us_per_delta')} us/delta  RSS {run.get('rss_per_stream_kib')} "
            f"KiB/subscriber  loader CPU {run['loader_cpu_pct']}%"
        )
    return (
        f"    {run['label']:<28} {run['system']:<18} {run['events_per_s']:>9,.0f} ev/s "
        f"p50 {fmt_ms(run.get('p50_ms'))} p99 {fmt_ms(run.get('p99_ms'))} max {fmt_ms(run.get('max_ms'))} ms "
        f"lost {run['lost']}  server CPU {run.get('cpu_us_per_delivery')} us/delivery  "
        f"loader CPU {run['loader_cpu_pct']}%"
    )


LOADER_BOUND = 85.0  # a loader process above this CPU% may be what limits the run
BASELINE_FOR = {
    "A": "naive",
    "A-lat": "naive",
    "B": "naive",
    "C": "naive",
    "E": "bare-starlette (auto loop)",
    "R": "naive",
    "R-rate": "naive",
    "A-win": "naive",
}


def add_ratios(runs: list[dict[str, Any]]) -> None:
    """ratio vs the naive baseline of the same scenario/transport/size (E: vs bare Starlette)."""
    for run in runs:
        if "error" in run:
            continue
        scen = run["scenario"]
        ref_name = BASELINE_FOR.get(scen)
        if ref_name is None or run["system"] == ref_name:
            continue
        same = [
            r
            for r in runs
            if r is not run
            and "error" not in r
            and r["scenario"] == scen
            and r["system"] == ref_name
            and r.get("clients") == run.get("clients")
            and (scen == "E" or r["transport"] == run["transport"])
        ]
        if not same:
            continue
        ref = same[0]
        if scen == "C":
            a, b = run.get("rss_per_conn_kib"), ref.get("rss_per_conn_kib")
        elif scen == "E":
            a, b = run.get("p50_ms"), ref.get("p50_ms")
        elif scen in ("A-lat", "R-rate"):
            a, b = run.get("p99_ms"), ref.get("p99_ms")
        else:
            a, b = run.get("events_per_s"), ref.get("events_per_s")
        if a is not None and b:
            run["ratio"] = round(a / b, 2)
            run["ratio_of"] = {"C": "RSS/conn", "E": "p50", "A-lat": "p99", "R-rate": "p99"}.get(
                scen, "events/s"
            ) + f" vs {ref_name}"
        a, b = run.get("cpu_us_per_delivery"), ref.get("cpu_us_per_delivery")
        if scen.startswith(("R", "A")) and a is not None and b:
            run["cpu_ratio"] = round(a / b, 2)  # server CPU per delivery vs the baseline's


def kib_cell(r: dict[str, Any]) -> str:
    """KiB per connection (C, C-task: a connection and its task) or per task (C-idle-task)."""
    value = r.get("rss_per_conn_kib", r.get("rss_per_task_kib"))
    return "" if value is None else f"{value:.1f}"


def lost_cell(r: dict[str, Any]) -> str:
    """Lost; for S also the followers that saw every session event exactly once."""
    lost = str(r.get("lost", ""))
    if r["scenario"] in ("S", "S-many"):
        return f"{lost}, once {r.get('exactly_once')}/{r.get('clients')}"
    return lost


def cpu_each_cell(r: dict[str, Any]) -> str:
    """The server's CPU µs per delivery (T: per delta; L: the gateway's per token)."""
    for key in ("cpu_us_per_delta", "cpu_us_per_token", "cpu_us_per_delivery"):
        if r.get(key) is not None:
            value: float = r[key]
            return f"{value:,.1f}"
    return ""


def table(runs: list[dict[str, Any]]) -> str:
    head = [
        "scenario",
        "system",
        "ev/s or calls/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "lost",
        "KiB/conn",
        "ratio",
        "loader CPU%",
        "server CPU%",
        "µs CPU each",
    ]
    rows = [head]
    for r in runs:
        if "error" in r:
            rows.append(
                [r["label"], r["system"], "ERROR", "", "", "", "", "", "", "", "", r["error"][:60]]
            )
            continue
        rate = r.get("events_per_s", r.get("calls_per_s"))
        cpu = r.get("cpu_pct", {})
        server_cpu = cpu.get("server")
        if r["system"] == "redis-pubsub":
            server_cpu = cpu.get("server")  # redis-server itself
        rows.append(
            [
                r["label"],
                r["system"],
                "" if rate is None else f"{rate:,.0f}",
                fmt_ms(r.get("p50_ms")) if not r["scenario"].startswith("C") else "",
                fmt_ms(r.get("p99_ms")) if not r["scenario"].startswith("C") else "",
                fmt_ms(r.get("max_ms")) if not r["scenario"].startswith("C") else "",
                lost_cell(r),
                kib_cell(r),
                "" if r.get("ratio") is None else f"{r['ratio']:.2f}x",
                (
                    "/".join(f"{c:.0f}" for c in r.get("loader_cpu_pct", []))
                    + (" (!)" if max(r.get("loader_cpu_pct") or [0]) > LOADER_BOUND else "")
                )
                if not r["scenario"].startswith("C")
                else "",
                "" if server_cpu is None else f"{server_cpu:.0f}",
                cpu_each_cell(r),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for k, row in enumerate(rows):
        cells = [
            row[i].ljust(widths[i]) if i < 2 else row[i].rjust(widths[i]) for i in range(len(head))
        ]
        lines.append("| " + " | ".join(cells) + " |")
        if k == 0:
            lines.append(
                "|"
                + "|".join(
                    "-" * (w + 2) if i < 2 else "-" * (w + 1) + ":" for i, w in enumerate(widths)
                )
                + "|"
            )
    return "\n".join(lines)


def targets(runs: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Where skillwire stands against each target of issues 8 and 18."""
    ok = [r for r in runs if "error" not in r]
    found: list[dict[str, Any]] = []
    k_big = max(csv_ints(args.a_k) or [0])

    def find(**want: Any) -> list[dict[str, Any]]:
        return [r for r in ok if all(r.get(k) == v for k, v in want.items())]

    for transport in ("ws", "sse"):
        for r in find(scenario="A", transport=transport, clients=k_big):
            if r["system"].startswith("skillwire") and r.get("ratio") is not None:
                found.append(
                    {
                        "target": f"A {transport.upper()} K={k_big}: >= 2.5x naive, zero loss",
                        "system": r["system"],
                        "value": f"{r['ratio']:.2f}x, lost {r['lost']}",
                        "met": r["ratio"] >= 2.5 and r["lost"] == 0,
                    }
                )
        for r in find(scenario="A-lat", transport=transport):
            if r["system"].startswith("skillwire") and r.get("p99_ms") is not None:
                per_s = r["clients"] * r["rate"]
                found.append(
                    {
                        "target": f"A {transport.upper()} p99 < 50 ms at {per_s:,.0f} deliveries/s",
                        "system": r["system"],
                        "value": f"p99 {r['p99_ms']:.1f} ms, lost {r['lost']}",
                        "met": r["p99_ms"] < 50 and r["lost"] == 0,
                    }
                )
        for r in find(scenario="B", transport=transport):
            if r["system"].startswith("skillwire") and r.get("ratio") is not None:
                found.append(
                    {
                        "target": f"B {transport.upper()}: >= 2x naive",
                        "system": r["system"],
                        "value": f"{r['ratio']:.2f}x, lost {r['lost']}",
                        "met": r["ratio"] >= 2 and r["lost"] == 0,
                    }
                )
        for r in find(scenario="C", transport=transport):
            if r["system"].startswith("skillwire") and r.get("rss_per_conn_kib") is not None:
                found.append(
                    {
                        "target": f"C {transport.upper()}: <= 25 KiB RSS per idle connection",
                        "system": r["system"],
                        "value": f"{r['rss_per_conn_kib']:.1f} KiB",
                        "met": r["rss_per_conn_kib"] <= 25 if transport == "ws" else None,
                    }
                )
    # issue 18's (E's target is the same in both issues): harness/targets.py
    found += [
        {"target": v.target, "system": v.system, "value": v.value, "met": v.met}
        for v in issue18(runs)
        if v.system != "-"
    ]
    return found


def report(result: dict[str, Any]) -> str:
    runs = result["runs"]
    meta = result["meta"]
    m = meta["machine"]
    warning = []
    if meta.get("source_changed_during_run"):
        warning = [
            "WARNING: server/ or protocol/ changed while this ran: the rows mix code versions.",
        ]
    out = [
        *warning,
        f"skillwire bench  {meta['date']}  {m['nproc']} cores ({m['cpu_model']}), {m['memory']}, "
        f"commit {m['commit']}, {meta['elapsed_s']:.0f}s",
        "",
        table(runs),
        "",
        "ratio: events/s vs the naive baseline (same scenario, transport, K); A latency rows: p99 vs naive;"
        " T rows: ev/s counts words (a delta carries one, or several merged), latency is per word;"
        " C: RSS per connection vs naive; E: p50 vs a bare Starlette endpoint (uvloop, as uvicorn picks).",
        "lost = sent - delivered (every subscriber is expected to get every event). loader CPU%: one figure"
        f" per loader process over the run; (!) marks a loader above {LOADER_BOUND:.0f}% (it may be the limit).",
        "µs CPU each: the server's CPU (gateway and workers) per delivery; T: per delta; L: the"
        " gateway's per token. S: lost, and the followers that saw every session event exactly once.",
        "",
        "targets (issues 8 and 18):",
    ]
    for t in result["targets"]:
        verdict = {True: "MET", False: "NOT MET", None: "(reported)"}[t["met"]]
        out.append(f"  {verdict:<10} {t['target']:<52} {t['system']:<18} {t['value']}")
    out += ["", "raw figures:"]
    for r in runs:
        if "error" in r:
            out.append(f"  {r['label']} / {r['system']}: ERROR {r['error']}")
            continue
        bits = [f"  {r['label']} / {r['system']}:"]
        if r["scenario"] in ("A", "A-lat", "A-win", "B", "R", "R-rate", "T", "T-fan"):
            bits.append(
                f"delivered {r['delivered']}/{r['expected']} in {r['span_s']}s, dups {r['dups']}, "
                f"gaps {r['gaps']}, reconnects {r['reconnects']}, retried ops {r.get('retries', 0)}, connect {r.get('connect_s', 0):.1f}s"
                f" (failed {r.get('connect_failed', 0)}), samples {r.get('samples')}"
            )
            if "deltas_per_s" in r:
                bits.append(
                    f"words {r['delivered']} in {r['deltas_delivered']} deltas "
                    f"({r['deltas_per_s']:,.0f} deltas/s, {r['words_per_delta']} words each), "
                    f"skillwire CPU {r['cpu_s']}s = {r['cpu_us_per_delta']} us/delta, "
                    f"RSS {r['rss_before_kib']} -> peak {r['rss_peak_kib']} KiB "
                    f"= {r['rss_per_stream_kib']} KiB/subscriber"
                )
            if r.get("publisher"):
                pub = r["publisher"]
                bits.append(
                    f"publisher {pub.get('published')} msgs in {pub.get('elapsed_s', 0):.2f}s"
                    + (
                        f" (window {pub['window']}, waited {pub['waits']}x)"
                        if pub.get("window")
                        else ""
                    )
                    + (f" ERROR {pub['error']}" if pub.get("error") else "")
                )
            if r.get("cpu_us_per_delivery") is not None:
                bits.append(
                    f"server CPU {r['server_cpu_s']}s = {r['cpu_us_per_delivery']} us/delivery"
                    + (f" ({r['cpu_ratio']}x the baseline's)" if r.get("cpu_ratio") else "")
                )
        elif r["scenario"] in ("S", "S-many"):
            bits.append(
                f"{r['sessions']} session(s), {r['tasks_per_session']} task(s) each, "
                f"session events {r['session_events']}: delivered {r['delivered']}/{r['expected']} "
                f"in {r['span_s']}s (received {r['received']}, dups {r['dups']}), exactly once "
                f"{r['exactly_once']}/{r['clients']} followers, connect {r.get('connect_s', 0):.1f}s "
                f"(failed {r.get('connect_failed', 0)}), server CPU {r.get('server_cpu_s')}s = "
                f"{r.get('cpu_us_per_delivery')} us/delivery"
            )
        elif r["scenario"] == "L":
            bits.append(
                f"tokens {r['delivered']}/{r['expected']} in {r['span_s']}s at {r['rate']:g}/s per "
                f"stream, stream errors {r['stream_errors']}, added p50/p99 "
                f"{r.get('added_p50_ms')}/{r.get('added_p99_ms')} ms, gateway CPU "
                f"{r.get('cpu_us_per_token')} us/token, RSS {r.get('rss_per_stream_kib')} KiB/stream"
            )
        elif r["scenario"] == "C-idle-task":
            bits.append(
                f"RSS {r['rss_before_kib']} -> {r['rss_after_kib']} KiB for {r['ready']} tasks "
                f"(failed {r.get('connect_failed')}), created in {r.get('connect_s', 0):.1f}s"
            )
        elif r["scenario"] in ("C", "C-task"):
            bits.append(
                f"RSS {r['rss_before_kib']} -> {r['rss_after_kib']} KiB for {r['ready']} connections "
                f"(failed {r.get('connect_failed')}), connect {r.get('connect_s', 0):.1f}s"
            )
        else:
            bits.append(
                f"{r['calls']} calls ok, {r['failed_calls']} failed, statuses {r['statuses']}"
            )
            if r.get("redis_commands_per_call"):
                bits.append(f"redis commands/call {r['redis_commands_per_call']}")
        if r.get("repeats"):
            bits.append(
                "repeats: "
                + ", ".join(f"{k} {v}" for k, v in r["repeats"].items() if v and k != "errors")
                + " (median shown)"
            )
        if r.get("note"):
            bits.append(f"NOTE: {r['note']}.")
        if r.get("cpu_pct"):
            bits.append("CPU% " + ", ".join(f"{k} {v:.0f}" for k, v in r["cpu_pct"].items()))
        if r.get("loader_cpu_pct"):
            bits.append(f"loaders {r['loader_cpu_pct']}%")
        if r.get("gc_pauses"):
            bits.append(
                "GC pauses >=2ms in the run: "
                + ", ".join(
                    f"{k} {v['count']} (gen2 {v['gen2']}, max {v['max_ms']:.0f} ms, total {v['total_ms']:.0f} ms)"
                    for k, v in r["gc_pauses"].items()
                )
            )
        if r.get("loader_errors"):
            bits.append(f"loader errors {r['loader_errors'][:2]}")
        for who, msgs in (r.get("log_warnings") or {}).items():
            bits.append(f"{who} logged: " + "; ".join(f"{n}x {m}" for m, n in msgs[:2]))
        out.append(" ".join(bits))
    trace = result.get("d_trace")
    if trace:
        out += [
            "",
            f"D: one demo/echo call ({trace.get('events')} events) as seen by Redis MONITOR "
            "(top-level commands = round trips, per process):",
        ]
        for who, cmds in trace["during_call_1s"].items():
            out.append(f"  {who}: {cmds}")
        out.append(f"  background for 1 s without calls: {trace['background_per_s']}")
    for name, prof in (result.get("profiles") or {}).items():
        if "top" in prof:
            out += [
                "",
                f"{name}: {prof['conns']} {'tasks' if prof.get('what') == 'task' else 'connections'}, RSS {prof['rss_per_conn_kib']} KiB/conn, "
                f"traced by tracemalloc {prof['traced_per_conn_kib']} KiB/conn ({prof['note']}); "
                "grown per connection, by allocation site (bytes, objects):",
            ]
            out += [f"    {b:8.0f} B {c:6.2f}  {site}" for site, b, c in prof["top"][:20]]
            continue
        out += [
            "",
            f"profile {name if name.endswith((' E', ' R', ' R worker0')) else name + ' A WS K=1000'}"
            f" ({prof['samples']} samples, {prof['run']}):",
            "  self time:",
        ]
        out += [f"    {pct:5.1f}%  {frame}" for frame, pct in prof["self"][:15]]
        out.append("  self time by line:")
        out += [f"    {pct:5.1f}%  {frame}" for frame, pct in prof["lines"][:10]]
        out.append("  total time (incl. callees):")
        out += [f"    {pct:5.1f}%  {frame}" for frame, pct in prof["total"][:15]]
    return "\n".join(out)
