"""The bench suite's orchestrator (run it through ``bench/run``).

Starts its own redis-server (127.0.0.1, a free port), the systems under test (skillwire on
both backbones, and the baselines from bench/.venv-baselines), the Node load generator
(bench/loader) split over one or more processes, and measures each scenario of issue 8:

  A  fan-out: one task (channel, room) to K subscribers over WS and SSE, at full speed
     (delivered events/s) and at a fixed rate (publish->receive latency)
  B  many tasks: K clients, each following its own task
  C  idle connections: server RSS per open WebSocket / SSE stream (WS: also bare uvicorn's)
  D  quick demo/echo calls over REST, redis backbone, separate worker processes
  E  overhead: a quick call answered inline vs a bare Starlette endpoint
  R  relay (issue 18): 1,000 tasks, each relaying what an outside publisher PUBLISHes to its
     own Redis channel, one WS follower each: a closed loop (N deliveries outstanding) and a
     fixed rate: delivered/s, server CPU per delivery, latency, loss; vs the naive relay
  (A also runs A-win, A at a small window: K followers of one relayed channel, a closed loop
  with 5 messages in flight; C also runs C-task and C-idle-task: RSS per idle WebSocket that
  follows its own running task, and per running task nobody follows)
  T  token streaming (issue 14): many streams of words (one growing output each) with one
     subscriber each, and one stream followed by many: deltas/s, emit->receive latency,
     CPU per delta, RSS per stream, on both backbones
  S  sessions (issue 16): one session followed by N WebSockets with 10 tasks streaming into it,
     and N sessions with one follower and one task each: delivered/s, server CPU per
     delivery, lost, and every follower's exactly-once check, on both backbones
  L  the LLM bridge (bench/llm): N streams from the bench's own OpenAI-compatible upstream,
     read directly and through /v1/chat/completions: CPU and p99 per token, lost tokens

Everything it starts it stops again, by PID; every wait is bounded. It prints one table
(and the raw figures) and writes JSON (bench/results/latest.json by default), and issue 18's
targets as Markdown next to it (latest-targets.md, harness/targets.py). This file
parses the options and writes the results; the parts it drives are in bench/harness/.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import sys
from pathlib import Path

from harness.environment import BENCH, log
from harness.options import csv_strs
from harness.processes import Proc
from harness.report import add_ratios, report, table, targets
from harness.suite import run_suite
from harness.targets import markdown


def env(name: str, default: str) -> str:
    return os.environ.get(f"BENCH_{name}", default)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny A, A-win, C-task, T, R, S and L runs, skillwire memory only (CI)",
    )
    p.add_argument(
        "--only",
        default=env("ONLY", "A,B,C,D,E,T,R,S,L"),
        help="scenarios to run (A,B,C,D,E,T,R,S,L; P: the profile; PR: R's profile)",
    )
    p.add_argument(
        "--backbones", default=env("BACKBONES", "memory,redis"), help="skillwire backbones"
    )
    p.add_argument("--no-baselines", action="store_true", help="skillwire only")
    p.add_argument("--transports", default=env("TRANSPORTS", "ws,sse"), help="for A, B and C")
    p.add_argument(
        "--loaders",
        type=int,
        default=int(env("LOADERS", "0")),
        help="loader processes per run (0: 2 from 500 connections, else 1)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=int(env("REPEAT", "1")),
        help="run each measurement N times and keep the median (noisy machines)",
    )
    p.add_argument("--size", type=int, default=int(env("SIZE", "200")), help="output payload bytes")
    p.add_argument("--a-k", default=env("A_K", "100,1000"), help="A: subscribers per run")
    p.add_argument(
        "--a-events", default=env("A_EVENTS", "2000,300"), help="A: events per run, one per --a-k"
    )
    p.add_argument(
        "--a-rate",
        type=float,
        default=float(env("A_RATE", "0")),
        help="A: events/s (0: as fast as it goes)",
    )
    p.add_argument(
        "--lat-k",
        type=int,
        default=int(env("LAT_K", "1000")),
        help="A latency: subscribers (0: skip)",
    )
    p.add_argument(
        "--lat-rate", type=float, default=float(env("LAT_RATE", "10")), help="A latency: events/s"
    )
    p.add_argument(
        "--lat-events", type=int, default=int(env("LAT_EVENTS", "30")), help="A latency: events"
    )
    p.add_argument(
        "--aw-k",
        type=int,
        default=int(env("AW_K", "1000")),
        help="A at a small window: followers of the one relayed channel (0: skip)",
    )
    p.add_argument(
        "--aw-window",
        type=int,
        default=int(env("AW_WINDOW", "5")),
        help="A at a small window: messages in flight (times K deliveries)",
    )
    p.add_argument(
        "--aw-events", type=int, default=int(env("AW_EVENTS", "300")), help="A-win: messages"
    )
    p.add_argument(
        "--r-tasks",
        type=int,
        default=int(env("R_TASKS", "1000")),
        help="R: relaying tasks (one channel and one WS follower each)",
    )
    p.add_argument(
        "--r-events",
        type=int,
        default=int(env("R_EVENTS", "100")),
        help="R closed loop: messages per task",
    )
    p.add_argument(
        "--r-window",
        type=int,
        default=int(env("R_WINDOW", "1000")),
        help="R closed loop: deliveries outstanding at most",
    )
    p.add_argument(
        "--r-rate",
        type=float,
        default=float(env("R_RATE", "10")),
        help="R fixed rate: messages/s per task (0: skip)",
    )
    p.add_argument(
        "--r-rate-events",
        type=int,
        default=int(env("R_RATE_EVENTS", "50")),
        help="R fixed rate: messages per task",
    )
    p.add_argument(
        "--b-clients",
        type=int,
        default=int(env("B_CLIENTS", "1000")),
        help="B: clients (one task each)",
    )
    p.add_argument(
        "--b-events", type=int, default=int(env("B_EVENTS", "60")), help="B: events per task"
    )
    p.add_argument(
        "--b-rate",
        type=float,
        default=float(env("B_RATE", "0")),
        help="B: events/s per task (0: max)",
    )
    p.add_argument(
        "--c-conns", type=int, default=int(env("C_CONNS", "5000")), help="C: idle connections"
    )
    p.add_argument(
        "--c-tasks",
        type=int,
        default=int(env("C_TASKS", "2000")),
        help="C: idle running tasks, followed and not (0: skip)",
    )
    p.add_argument("--d-conc", default=env("D_CONC", "1,16,128"), help="D: concurrency levels")
    p.add_argument(
        "--d-seconds", type=float, default=float(env("D_SECONDS", "4")), help="D: seconds per level"
    )
    p.add_argument(
        "--d-workers",
        type=int,
        default=int(env("D_WORKERS", "2")),
        help="D: skillwire worker processes",
    )
    p.add_argument(
        "--e-seconds",
        type=float,
        default=float(env("E_SECONDS", "4")),
        help="E: seconds per system",
    )
    p.add_argument(
        "--t-streams",
        type=int,
        default=int(env("T_STREAMS", "1000")),
        help="T: concurrent streams (one task and one subscriber each)",
    )
    p.add_argument(
        "--t-rate", type=float, default=float(env("T_RATE", "20")), help="T: words/s per stream"
    )
    p.add_argument(
        "--t-words", type=int, default=int(env("T_WORDS", "200")), help="T: words per stream"
    )
    p.add_argument(
        "--t-fanout",
        type=int,
        default=int(env("T_FANOUT", "1000")),
        help="T: subscribers of the one-stream run (0: skip)",
    )
    p.add_argument(
        "--s-followers",
        type=int,
        default=int(env("S_FOLLOWERS", "1000")),
        help="S: WebSocket followers of the one session (0: skip)",
    )
    p.add_argument(
        "--s-tasks",
        type=int,
        default=int(env("S_TASKS", "10")),
        help="S: countdown tasks streaming into the one session",
    )
    p.add_argument(
        "--s-sessions",
        type=int,
        default=int(env("S_SESSIONS", "1000")),
        help="S: sessions with one follower and one countdown each (0: skip)",
    )
    p.add_argument(
        "--s-ticks", type=int, default=int(env("S_TICKS", "20")), help="S: ticks per countdown"
    )
    p.add_argument(
        "--l-streams",
        type=int,
        default=int(env("L_STREAMS", "500")),
        help="L: concurrent LLM streams from the bench's upstream",
    )
    p.add_argument(
        "--l-rate", type=float, default=float(env("L_RATE", "50")), help="L: tokens/s per stream"
    )
    p.add_argument(
        "--l-seconds", type=float, default=float(env("L_SECONDS", "10")), help="L: stream length"
    )
    p.add_argument(
        "--l-ramp",
        type=float,
        default=float(env("L_RAMP", "2")),
        help="L: seconds over which the streams start",
    )
    p.add_argument(
        "--l-modes",
        default=env("L_MODES", "openai"),
        help="L: gateway paths (openai: /v1/chat/completions; ws: llm/chat), after the direct one",
    )
    p.add_argument(
        "--max-calls",
        type=int,
        default=int(env("MAX_CALLS", "200000")),
        help="D/E: bound on calls per level",
    )
    p.add_argument(
        "--settle",
        type=float,
        default=float(env("SETTLE", "0.5")),
        help="seconds between ready and go",
    )
    p.add_argument("--connect-timeout", type=float, default=float(env("CONNECT_TIMEOUT", "90")))
    p.add_argument(
        "--run-timeout",
        type=float,
        default=float(env("RUN_TIMEOUT", "60")),
        help="seconds a run may take after go (what has not arrived by then is lost)",
    )
    p.add_argument(
        "--profile", action="store_true", help="also py-spy the server under A K=1000 WS"
    )
    p.add_argument(
        "--json",
        default=env("JSON", str(BENCH / "results" / "latest.json")),
        help="where to write the JSON",
    )
    args = p.parse_args(argv)
    default_json = str(BENCH / "results" / "latest.json")
    if set(csv_strs(args.only.upper())) <= {"P", "PR"} and args.json == default_json:
        args.json = str(BENCH / "results" / "profile.json")  # a profile leaves the table alone
    if args.smoke:
        args.only = "A,T,R,C,S,L"
        args.l_streams, args.l_rate, args.l_seconds, args.l_ramp = 5, 20.0, 1.0, 0.2
        args.l_modes = "openai"
        args.s_followers, args.s_sessions, args.s_tasks, args.s_ticks = 5, 5, 2, 5
        args.c_conns, args.c_tasks = 0, 5  # C with tasks only: the plain C is the same code
        args.aw_k, args.aw_window, args.aw_events = 5, 2, 20
        args.r_tasks, args.r_events, args.r_window = 5, 20, 5
        args.r_rate, args.r_rate_events = 20.0, 10
        args.t_streams, args.t_words, args.t_rate, args.t_fanout = 5, 20, 100.0, 5
        args.backbones = "memory"
        args.no_baselines = True
        args.transports = "ws"
        args.a_k, args.a_events = "20", "50"
        args.lat_k = 0
        args.loaders = 1
        args.settle = 0.2
        args.run_timeout = 20
        args.connect_timeout = 20
    return args


def open_files(args: argparse.Namespace) -> None:
    """Raise this process's open-file limit to its hard limit (the servers and loaders it
    starts inherit it): C at 5,000 connections needs more than the usual soft 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    need = 2 * max(args.c_conns, args.c_tasks, args.s_sessions, args.s_followers) + 1024
    if hard != resource.RLIM_INFINITY and hard < need:
        log(f"bench/run: open files limited to {hard}; C and S at these sizes need ~{need}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    open_files(args)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    if shutil.which("node") is None:
        log("bench/run: node is not installed")
        return 2
    try:
        result = run_suite(args)
    except KeyboardInterrupt:
        Proc.stop_all()
        log("interrupted")
        return 130
    add_ratios(result["runs"])
    result["targets"] = targets(result["runs"], args)
    text = report(result)
    print(text, flush=True)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    result["table"] = table(result["runs"])
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    log(f"wrote {path}")
    if result["runs"]:
        md = path.with_name(path.stem + "-targets.md")  # bench/tools/targets.py prints the same
        md.write_text(markdown(json.loads(path.read_text())))
        log(f"wrote {md} (issue 18's targets, Markdown)")
    errors = [r for r in result["runs"] if "error" in r]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
