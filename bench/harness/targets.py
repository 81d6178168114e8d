"""Issue 18's targets against one ``bench/run`` result, as Markdown for docs/performance.md.

Each target is checked on the run's median rows (``--repeat N``) and, next to the median, on
each pass, a pass of skillwire against the same pass of its baseline (they ran minutes
apart, on the same machine). Every ratio names the figure it was taken against: the same
run's naive relay (or bare endpoint), never a figure from elsewhere. S and L have no target
of issue 18: their figures are reported as they land (L next to bench/llm's own targets).

``bench/tools/targets.py latest.json`` prints it; ``bench/run`` writes it next to its JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Run = dict[str, Any]

# the figures each pass keeps with --repeat (harness/figures.py collapse_repeats)
PASS_FIELDS = (
    "events_per_s",
    "cpu_us_per_delivery",
    "p50_ms",
    "p99_ms",
    "lost",
    "rss_per_conn_kib",
    "rss_per_task_kib",
    "cpu_us_per_delta",
    "exactly_once",
    "cpu_us_per_token",
    "added_p99_ms",
)
LLM_ADDED_P99_MS = 10.0  # bench/llm/run.py's own targets
LLM_CPU_US = 20.0


@dataclass
class Verdict:
    """One target on one system: the median's figures, each pass's, and what they face."""

    target: str
    system: str
    value: str
    met: bool | None  # None: reported, no target (or nothing to compare with)
    passes: list[str]
    against: str = ""

    def cell(self) -> str:
        if self.system == "-":
            return "not run"
        return {True: "**met**", False: "not met", None: "reported"}[self.met]


def passes(run: Run) -> list[Run]:
    """Each pass's figures (one pass: the row itself)."""
    found: list[Run] = run.get("passes") or [run]
    return found


def ratio(a: float | None, b: float | None) -> float | None:
    """a ÷ b to two decimals: the figure shown is the figure judged (0.404 is 0.40x, met)."""
    return None if a is None or not b else round(a / b, 2)


def pairs(run: Run, ref: Run, field: str) -> Iterator[tuple[Any, Any]]:
    """(this pass's figure, the baseline's in the same pass), pass by pass."""
    mine, theirs = passes(run), passes(ref)
    for k, p in enumerate(mine):
        q = theirs[k] if len(theirs) == len(mine) else ref
        yield p.get(field), q.get(field)


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" if abs(value) < 1000 else f"{value:,.0f}"


def fx(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


class Finder:
    """The run's rows that finished, and the baseline row of a row."""

    def __init__(self, runs: list[Run]) -> None:
        self.ok = [r for r in runs if "error" not in r]

    def rows(self, *, skillwire: bool = True, **want: Any) -> list[Run]:
        return [
            r
            for r in self.ok
            if all(r.get(k) == v for k, v in want.items())
            and (not skillwire or r["system"].startswith("skillwire"))
        ]

    def ref(self, run: Run, system: str, same_transport: bool = True) -> Run | None:
        for r in self.ok:
            if (
                r["scenario"] == run["scenario"]
                and r["system"] == system
                and r.get("clients") == run.get("clients")
                and (not same_transport or r.get("transport") == run.get("transport"))
            ):
                return r
        return None


def relay_targets(f: Finder) -> list[Verdict]:
    """R: delivered/s and server CPU per delivery vs the same run's naive relay, zero loss."""
    out = []
    for r in f.rows(scenario="R"):
        ref = f.ref(r, "naive")
        target = f"R x{r['clients']:,}: ≥ 2.5x naive delivered/s, ≤ 0.4x its CPU/delivery, lost 0"
        if ref is None:
            out.append(Verdict(target, r["system"], "no naive row in this run", None, []))
            continue
        speed = ratio(r["events_per_s"], ref["events_per_s"])
        cpu = ratio(r.get("cpu_us_per_delivery"), ref.get("cpu_us_per_delivery"))
        each = [
            f"{fx(ratio(a, b))}/{fx(ratio(c, d))}"
            for (a, b), (c, d) in zip(
                pairs(r, ref, "events_per_s"), pairs(r, ref, "cpu_us_per_delivery"), strict=True
            )
        ]
        out.append(
            Verdict(
                target,
                r["system"],
                f"{fx(speed)} delivered/s ({fmt(r['events_per_s'], 0)}/s), {fx(cpu)} CPU "
                f"({fmt(r.get('cpu_us_per_delivery'))} µs), lost {r['lost']}",
                None
                if speed is None or cpu is None
                else speed >= 2.5 and cpu <= 0.4 and r["lost"] == 0,
                each,
                f"naive: {fmt(ref['events_per_s'], 0)}/s, {fmt(ref.get('cpu_us_per_delivery'))} µs "
                f"per delivery"
                + pass_list(
                    [(p.get("events_per_s"), p.get("cpu_us_per_delivery")) for p in passes(ref)]
                ),
            )
        )
    return out


def pass_list(values: list[tuple[float | None, float | None]]) -> str:
    if len(values) < 2:
        return ""
    return " (" + ", ".join(f"{fmt(a, 0)}/s {fmt(b)} µs" for a, b in values) + ")"


def ratio_target(
    f: Finder,
    scenario: str,
    field: str,
    unit: str,
    title: Callable[[Run], str],
    good: Callable[[float], bool],
    baseline: str = "naive",
    transport: str | None = None,
    digits: int = 1,
) -> list[Verdict]:
    """A target on one figure's ratio to the same run's baseline row."""
    out = []
    want: dict[str, Any] = {"scenario": scenario} | ({"transport": transport} if transport else {})
    for r in f.rows(**want):
        ref = f.ref(r, baseline, same_transport=scenario != "E")
        if ref is None:
            out.append(Verdict(title(r), r["system"], f"no {baseline} row in this run", None, []))
            continue
        value = ratio(r.get(field), ref.get(field))
        each = [f"{fx(ratio(a, b))}" for a, b in pairs(r, ref, field)]
        sep = "" if unit.startswith("/") else " "
        out.append(
            Verdict(
                title(r),
                r["system"],
                f"{fx(value)}: {fmt(r.get(field), digits)}{sep}{unit}, lost {r.get('lost')}",
                None if value is None else good(value) and not r.get("lost"),
                each,
                f"{baseline}: {fmt(ref.get(field), digits)}{sep}{unit}"
                + (
                    " (" + ", ".join(fmt(p.get(field), digits) for p in passes(ref)) + ")"
                    if len(passes(ref)) > 1
                    else ""
                ),
            )
        )
    return out


def bound_target(
    f: Finder, scenario: str, field: str, limit: float, unit: str, title: Callable[[Run], str],
    transport: str | None = None, against: Callable[[Run], str] = lambda r: "",
) -> list[Verdict]:  # fmt: skip
    """A target on one figure of skillwire's own: at most ``limit``."""
    out = []
    want: dict[str, Any] = {"scenario": scenario} | ({"transport": transport} if transport else {})
    for r in f.rows(**want):
        value = r.get(field)
        out.append(
            Verdict(
                title(r),
                r["system"],
                f"{fmt(value)} {unit}",
                None if value is None else value <= limit,
                [fmt(p.get(field)) for p in passes(r)],
                against(r),
            )
        )
    return out


def reported(f: Finder) -> list[Verdict]:
    """S and L: their figures as they land (L against bench/llm's own targets)."""
    out = []
    for r in f.rows(scenario="S") + f.rows(scenario="S-many"):
        what = (
            f"S one session, {r['clients']:,} followers"
            if r["scenario"] == "S"
            else f"S {r['sessions']:,} sessions, one follower each"
        )
        out.append(
            Verdict(
                f"{what} (no target: as it lands)",
                r["system"],
                f"{fmt(r['events_per_s'], 0)} delivered/s, {fmt(r.get('cpu_us_per_delivery'))} µs "
                f"CPU/delivery, exactly once {r['exactly_once']}/{r['clients']}, lost {r['lost']}",
                None,
                [
                    f"{fmt(p.get('events_per_s'), 0)}/s {fmt(p.get('cpu_us_per_delivery'))} µs"
                    for p in passes(r)
                ],
            )
        )
    for r in f.rows(scenario="L"):
        cpu, added = r.get("cpu_us_per_token"), r.get("added_p99_ms")
        out.append(
            Verdict(
                f"L {r['label'][2:]} (bench/llm's own: added p99 < {LLM_ADDED_P99_MS:g} ms, "
                f"< {LLM_CPU_US:g} µs CPU/token)",
                r["system"],
                f"p99 {fmt(r.get('p99_ms'), 2)} ms (added {fmt(added, 2)}), {fmt(cpu)} µs "
                f"CPU/token, lost {r['lost']}",
                None
                if cpu is None or added is None
                else added < LLM_ADDED_P99_MS and cpu < LLM_CPU_US and r["lost"] == 0,
                [
                    f"+{fmt(p.get('added_p99_ms'), 2)} ms {fmt(p.get('cpu_us_per_token'))} µs"
                    for p in passes(r)
                ],
                "the upstream read directly, same run",
            )
        )
    return out


def issue18(runs: list[Run]) -> list[Verdict]:
    """Every issue-18 target the run has rows for, then S and L as reported figures."""
    f = Finder(runs)

    def floor(r: Run) -> str:
        row = next(
            (
                x
                for x in f.rows(skillwire=False, scenario="C", transport="ws")
                if "floor" in x["system"]
            ),
            None,
        )
        return "" if row is None else f"uvicorn alone: {fmt(row.get('rss_per_conn_kib'))} KiB"

    families = [
        ("R: ≥ 2.5x naive delivered/s, ≤ 0.4x its CPU/delivery, lost 0", relay_targets(f)),
        ("A-win K=1,000: ≥ 3x naive delivered/s", ratio_target(
            f, "A-win", "events_per_s", "/s",
            lambda r: f"A-win K={r['clients']:,}, {r.get('window', 0) // max(r['clients'], 1)} in flight: ≥ 3x naive delivered/s",
            lambda v: v >= 3, digits=0,
        )),
        ("A WS p99 at 10,000 deliveries/s, K=1,000: ≤ 0.45x naive (`--lat-k 1000`)", ratio_target(
            f, "A-lat", "p99_ms", "ms",
            lambda r: f"A WS p99 at {r['clients'] * r['rate']:,.0f} deliveries/s, K={r['clients']:,}: ≤ 0.45x naive",
            lambda v: v <= 0.45, transport="ws",
        )),
        ("C: ≤ 12 KiB RSS per idle WebSocket", bound_target(
            f, "C", "rss_per_conn_kib", 12, "KiB",
            lambda r: f"C: ≤ 12 KiB RSS per idle WebSocket (x{r['clients']:,})",
            transport="ws", against=floor,
        )),
        ("C-idle-task: ≤ 4 KiB RSS per idle running task", bound_target(
            f, "C-idle-task", "rss_per_task_kib", 4, "KiB",
            lambda r: f"C-idle-task: ≤ 4 KiB RSS per idle running task (x{r['clients']:,})",
        )),
        ("E: p50 ≤ 1.5x a bare Starlette endpoint", ratio_target(
            f, "E", "p50_ms", "ms", lambda r: "E: p50 ≤ 1.5x a bare Starlette endpoint",
            lambda v: v <= 1.5, baseline="bare-starlette (auto loop)", digits=2,
        )),
        ("T streams: ≤ 10 µs CPU per delta", bound_target(
            f, "T", "cpu_us_per_delta", 10, "µs",
            lambda r: f"T streams {r['transport'].upper()} (x{r['clients']:,}, one follower each): ≤ 10 µs CPU per delta",
        )),
        ("S and L: figures as they land", reported(f)),
    ]  # fmt: skip
    out = []
    for name, found in families:
        out += found or [Verdict(name, "-", "not in this run", None, [])]
    return out


def sizes(args: dict[str, Any]) -> str:
    """The sizes the run was taken at, as the options gave them, for the scenarios it ran."""

    def get(name: str) -> Any:
        return args.get(name, "?")

    only = {x.strip() for x in str(args.get("only", "")).upper().split(",")}
    parts = {
        "R": f"R {get('r_tasks')} tasks, {get('r_events')} each (window {get('r_window')}), "
        f"@{get('r_rate')}/s, {get('r_rate_events')} each",
        "A": f"A-win K={get('aw_k')}, {get('aw_window')} in flight; A latency K={get('lat_k')} "
        f"@{get('lat_rate')}/s",
        "C": f"C {get('c_conns')} conns, {get('c_tasks')} tasks",
        "E": f"E {get('e_seconds')} s per system",
        "T": f"T {get('t_streams')} streams @{get('t_rate')} words/s, 1 stream to "
        f"{get('t_fanout')}",
        "S": f"S {get('s_followers')} followers, {get('s_sessions')} sessions",
        "L": f"L {get('l_streams')} streams @{get('l_rate')} tokens/s",
    }
    return "; ".join(text for name, text in parts.items() if name in only)


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def markdown(result: dict[str, Any]) -> str:
    """The targets table of one ``bench/run`` result (its JSON), ready for docs/performance.md."""
    meta = result.get("meta", {})
    args = meta.get("args", {})
    repeat = int(args.get("repeat") or 1)
    machine = meta.get("machine", {})
    verdicts = issue18(result["runs"])
    head = (
        f"Issue 18's targets: `bench/run --only {args.get('only', '?')}` on "
        f"{meta.get('date', '?')}, commit `{machine.get('commit', '?')}`, "
        f"{machine.get('nproc', '?')} cores, {duration(meta.get('elapsed_s', 0))}, "
        + ("one pass." if repeat == 1 else f"{repeat} passes (the median, then each pass).")
    )
    if meta.get("source_changed_during_run"):
        head += " **server/ or protocol/ changed during the run: the rows mix code versions.**"
    lines = [
        head,
        "",
        f"Sizes: {sizes(args)}.",
        "",
        "| target | system | figure" + (" (each pass)" if repeat > 1 else "") + " | compared with (this run) | |",
        "|---|---|---|---|---|",
    ]  # fmt: skip
    for v in verdicts:
        each = f" (passes: {', '.join(v.passes)})" if len(v.passes) > 1 else ""
        lines.append(f"| {v.target} | {v.system} | {v.value}{each} | {v.against} | {v.cell()} |")
    errors = [r for r in result["runs"] if "error" in r]
    if errors:
        lines += ["", "Rows that failed (not in the table):", ""]
        lines += [f"- {r['label']} / {r['system']}: {r['error'][:160]}" for r in errors]
    return "\n".join(lines) + "\n"
