"""The scenarios of issue 8 (A to E) and issue 14 (T): which runs each one makes, over which
systems and sizes.

docs/performance.md ("What each scenario measures") says what each measures and why.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from .environment import log
from .options import csv_ints, csv_strs
from .redis_trace import monitor_one_call
from .runs import call_run, idle_run, stream_run
from .session import Bench
from .systems import FLOOR, http_json, start_bare, start_skillwire


@dataclass
class Plan:
    """What this suite run covers, from the options."""

    only: set[str]  # scenarios: A, B, C, D, E, T, P
    backbones: list[str]
    transports: list[str]
    baselines: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Plan:
        return cls(
            only=set(csv_strs(args.only.upper())),
            backbones=csv_strs(args.backbones),
            transports=csv_strs(args.transports),
            baselines=not args.no_baselines,
        )

    def systems(self, transport: str) -> list[str]:
        """The systems a scenario compares over ``transport`` (socket.io: WebSocket only)."""
        names = [f"skillwire-{b}" for b in self.backbones]
        if self.baselines:
            names.append("naive")
            if transport == "ws":
                names.append("socketio")
        return names


def scenario_a(bench: Bench, plan: Plan) -> None:
    args = bench.args
    log("A  fan-out: one task, K subscribers")
    for k, n in zip(csv_ints(args.a_k), csv_ints(args.a_events), strict=True):
        for transport in plan.transports:
            for name in plan.systems(transport):
                stream_run(
                    bench, "A", name, transport, k, n, args.a_rate, own_task=False,
                    label=f"A fan-out {transport.upper()} K={k}",
                )  # fmt: skip
        if plan.baselines:
            stream_run(
                bench, "A", "redis-pubsub", "redis", k, n, args.a_rate, own_task=False,
                label=f"A fan-out raw pub/sub K={k}",
            )  # fmt: skip
    if args.lat_k:
        per_s = args.lat_k * args.lat_rate
        for transport in plan.transports:
            for name in plan.systems(transport):
                stream_run(
                    bench, "A-lat", name, transport, args.lat_k, args.lat_events, args.lat_rate,
                    own_task=False,
                    label=f"A latency {transport.upper()} K={args.lat_k} @{per_s:,.0f}/s",
                )  # fmt: skip


def scenario_b(bench: Bench, plan: Plan) -> None:
    args = bench.args
    log(f"B  many tasks: {args.b_clients} clients, one task each")
    for transport in plan.transports:
        for name in plan.systems(transport):
            stream_run(
                bench, "B", name, transport, args.b_clients, args.b_events, args.b_rate,
                own_task=True, label=f"B own task {transport.upper()} x{args.b_clients}",
            )  # fmt: skip


def scenario_c(bench: Bench, plan: Plan) -> None:
    args = bench.args
    log(f"C  idle connections: {args.c_conns}")
    for transport in plan.transports:
        # the floor (uvicorn alone, skillwire's .venv) runs with or without the baselines, like
        # E's bare endpoint: what of skillwire's memory per WebSocket is the server stack's own
        floor = [FLOOR] if transport == "ws" else []
        for name in plan.systems(transport) + floor:
            idle_run(bench, name, transport, args.c_conns)


def scenario_d(bench: Bench, plan: Plan, *, first: bool) -> None:
    args = bench.args
    log(f"D  demo/echo over REST, redis backbone, {args.d_workers} worker processes")
    system = start_skillwire(bench, "redis", workers=args.d_workers, apps=False)
    try:
        for c in csv_ints(args.d_conc):
            call_run(bench, "D", system, c, args.d_seconds, f"D echo REST c={c}")
        if first:  # one trace is enough: the call path does not change between repeats
            assert bench.redis is not None
            bench.d_trace = monitor_one_call(bench.redis, system)
    finally:
        system.stop()
    if "memory" in plan.backbones:
        system = start_skillwire(bench, "memory", apps=False)
        try:
            for c in csv_ints(args.d_conc):
                call_run(bench, "D", system, c, args.d_seconds, f"D echo REST c={c} (inline)")
        finally:
            system.stop()


def scenario_e(bench: Bench) -> None:
    args = bench.args
    log("E  overhead: quick call inline vs a bare Starlette endpoint")
    system = start_skillwire(bench, "memory", apps=False)
    # the bare endpoint answers with the very bytes skillwire answered: same response size
    body_file = bench.tmp / "echo-task.json"
    try:
        _, body = http_json(
            system.port, "POST", "/api/v1/apps/demo/echo", {"requests": [{"text": "hello"}]}
        )
        body_file.write_bytes(body)
        call_run(bench, "E", system, 1, args.e_seconds, "E quick call c=1")
    finally:
        system.stop()
    for loop in ("auto", "asyncio"):
        bare = start_bare(bench, body_file, loop)
        try:
            call_run(bench, "E", bare, 1, args.e_seconds, "E quick call c=1")
        finally:
            bare.stop()


def scenario_t(bench: Bench, plan: Plan) -> None:
    """Token streaming: many demo/stream-like tasks with one reader each, then one task read
    by many (skillwire only: the baselines have no streamed outputs)."""
    args = bench.args
    per_s = args.t_streams * args.t_rate
    log(
        f"T  token streaming: {args.t_streams} streams at {args.t_rate:g} words/s "
        f"({per_s:,.0f} words/s), and one stream to {args.t_fanout} subscribers"
    )
    for transport in plan.transports:
        for backbone in plan.backbones:
            name = f"skillwire-{backbone}"
            stream_run(
                bench, "T", name, transport, args.t_streams, args.t_words, args.t_rate,
                own_task=True, skill="tokens",
                label=f"T streams {transport.upper()} x{args.t_streams} @{args.t_rate:g}w/s",
            )  # fmt: skip
            if args.t_fanout:
                stream_run(
                    bench, "T-fan", name, transport, args.t_fanout, args.t_words, args.t_rate,
                    own_task=False, skill="tokens",
                    label=f"T one stream {transport.upper()} K={args.t_fanout}",
                )  # fmt: skip
