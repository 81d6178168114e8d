"""One measured run each: start the system, connect the loaders, measure, stop everything.

``stream_run`` (A, B: events delivered to subscribers; T: words of streamed outputs), ``idle_run`` (C: memory per open
connection), ``call_run`` (D, E: calls answered). A run that fails records its error and the
suite goes on; whatever a run started, it stops before it returns.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import pyspy
from .environment import KEY, log
from .figures import latencies, percentiles, stream_figures
from .loaders import loader_count, start_loaders
from .processes import CLK_TCK, Proc, scan_log
from .publisher import Relay, start_publisher
from .session import Bench
from .systems import FLOOR, System, http_json, start_baseline, start_floor, start_skillwire


def stream_run(
    bench: Bench,
    scenario: str,
    system_name: str,
    transport: str,
    clients: int,
    n: int,
    rate: float,
    *,
    own_task: bool,
    label: str,
    skill: str = "emit",
    relay: Relay | None = None,
) -> dict[str, Any]:
    """``skill`` "emit": ``n`` outputs per task; "tokens" (scenario T): one streamed output
    grown by ``n`` words, whose deltas the loaders split into words (one latency each).

    ``relay`` (scenarios R, A-win): an outside publisher PUBLISHes ``n`` messages to each
    target's Redis channel, at ``rate`` or in a closed loop; skillwire's tasks are
    ``bench/relay`` tasks forwarding their channel, the naive relay forwards it as in A."""
    args = bench.args
    run: dict[str, Any] = {
        "scenario": scenario,
        "label": label,
        "system": system_name,
        "transport": transport,
        "clients": clients,
        "events_per_target": n,
        "rate": rate,
        "own_task": own_task,
        "size": args.size,
    }
    if relay is not None:
        run["window"] = relay.window
    start_file = bench.tmp / f"start-{secrets.token_hex(4)}"
    system: System | None = None
    procs: list[Proc] = []
    try:
        if system_name.startswith("skillwire"):
            backbone = system_name.split("-", 1)[1]
            concurrency = max(64, clients + 16) if own_task else 64
            system = start_skillwire(bench, backbone, concurrency=concurrency)
            request: dict[str, Any] = {
                "n": n,
                "rate": rate,
                "start_file": str(start_file),
                "max_wait": 120,
            }
            if skill == "emit":
                request["size"] = args.size
            if relay is not None:
                assert bench.redis is not None
                skill = "relay"
                prefix = f"relay{secrets.token_hex(3)}"
                request = {"channel": prefix, "redis_url": bench.redis.url, "n": n}
            base = {
                "system": "skillwire",
                "transport": transport,
                "port": system.port,
                "key": KEY,
                "app": "bench",
                "skill": skill,
                "terminal": True,
            }
            if own_task and relay is not None:
                conns: list[dict[str, Any]] = [
                    {"call": {**request, "channel": f"{prefix}{j}"}} for j in range(clients)
                ]
            elif own_task:
                conns = [{"call": request} for _ in range(clients)]
            else:
                status, body = http_json(
                    system.port,
                    "POST",
                    f"/api/v1/apps/bench/{skill}",
                    {"requests": [request]},
                    {"Prefer": "respond-async"},
                )
                if status not in (200, 202):
                    raise RuntimeError(f"creating the task: HTTP {status} {body[:200]!r}")
                task_id = json.loads(body)["task_id"]
                conns = [{"target": task_id} for _ in range(clients)]
            rss_before = sum(p.rss_kib() for p in system.procs.values())
            if relay is not None:
                system.procs["publisher"] = start_publisher(
                    bench, mode="redis", prefix=prefix, count=clients if own_task else 0,
                    n=n, rate=rate, start_file=start_file, relay=relay,
                    fanout=1 if own_task else clients,
                )  # fmt: skip
        else:
            assert bench.redis is not None
            if system_name == "redis-pubsub":
                bench.redis.reset()
                system = System("redis-pubsub", bench.redis.port, {"server": bench.redis.proc})
                base = {"system": "redis", "transport": "redis", "port": bench.redis.port}
            else:
                system = start_baseline(bench, system_name)
                base = {"system": system_name, "transport": transport, "port": system.port}
            prefix = f"bench{secrets.token_hex(3)}"
            targets = [f"{prefix}{j}" for j in range(clients)] if own_task else [prefix] * clients
            conns = [{"target": t} for t in targets]
            system.procs["publisher"] = start_publisher(
                bench, mode="socketio" if system_name == "socketio" else "redis",
                prefix=prefix, count=clients if own_task else 0, n=n, rate=rate,
                start_file=start_file, relay=relay, fanout=1 if own_task else clients,
            )  # fmt: skip
        if system.note:
            run["note"] = system.note
        base.update({"expect": n, "run_timeout_s": args.run_timeout, "connect_parallel": 100})
        if relay is not None and relay.ack_port:
            base["ack_port"] = relay.ack_port
        procs = start_loaders(bench, base, conns, loader_count(bench, clients))
        readies = [p.expect("ready", args.connect_timeout) for p in procs]
        failed = sum(r["failed"] for r in readies)
        run["connect_s"] = max(r["connect_s"] for r in readies)
        run["connect_failed"] = failed
        if failed:
            run["connect_errors"] = [e for r in readies for e in r["errors"]][:5]
        time.sleep(args.settle)
        watched = dict(system.procs)
        if bench.redis is not None and system_name not in ("redis-pubsub", "skillwire-memory"):
            watched["redis"] = bench.redis.proc
        spy = pyspy.attach(bench.profile_hook, system.server.pid, bench.tmp)
        # The redis backbone's first worker too (relay skills, appends): its own stacks file.
        worker_spy = (
            pyspy.attach(
                pyspy.for_worker(bench.profile_hook), system.procs["worker0"].pid, bench.tmp
            )
            if "worker0" in system.procs
            else None
        )
        window = [time.time(), 0.0]
        cpu0 = {name: p.cpu_ticks() for name, p in watched.items()}
        own_procs = list(system.procs.values())
        peak = PeakSampler(lambda: sum(p.rss_kib() for p in own_procs))
        t0 = time.monotonic()
        for p in procs:
            p.send("go")
        start_file.touch()
        try:
            results = [p.expect("result", args.run_timeout + 30) for p in procs]
        finally:
            wall = time.monotonic() - t0
            window[1] = time.time()
            cpu1 = {name: p.cpu_ticks() for name, p in watched.items()}
            pyspy.detach(spy)
            pyspy.detach(worker_spy)
            peak.stop()
        run["cpu_pct"] = {
            name: round(100 * (cpu1[name] - cpu0[name]) / CLK_TCK / wall, 1) for name in watched
        }
        run["loader_cpu_pct"] = [round(r["cpu_pct"] or 0, 1) for r in results]
        run["loader_rss_kib"] = [r["rss_kib"] for r in results]
        if "publisher" in system.procs:
            with contextlib.suppress(Exception):
                run["publisher"] = system.procs["publisher"].expect("", 30)
        stream_figures(run, results)
        # the server's own CPU (gateway and workers; not redis-server, not the publisher)
        server_s = sum(cpu1[k] - cpu0[k] for k in watched if k not in ("redis", "publisher"))
        run["server_cpu_s"] = round(server_s / CLK_TCK, 2)
        if run["delivered"]:
            run["cpu_us_per_delivery"] = round(server_s / CLK_TCK * 1e6 / run["delivered"], 1)
        if skill == "tokens":
            own = [n for n in watched if n != "redis"]  # skillwire's processes: gateway, workers
            cpu_s = sum(cpu1[n] - cpu0[n] for n in own) / CLK_TCK
            token_figures(run, results, cpu_s, rss_before, peak.peak, clients)
    except Exception as exc:  # one failed run must not sink the whole suite
        run["error"] = f"{type(exc).__name__}: {exc}"
        log(f"    ! {label}: {run['error']}")
    finally:
        for p in procs:
            p.send("stop")
        for p in procs:
            with contextlib.suppress(Exception):
                p.popen.wait(5)
            p.stop(grace=1.0)
        if system is not None and system.name != "redis-pubsub":
            system.stop()
        elif system is not None and "publisher" in system.procs:
            system.procs["publisher"].stop()
        if system is not None and system.name != "redis-pubsub":
            scan_into(
                run, system, *(window if "window" in locals() and window[1] else (None, None))
            )
        with contextlib.suppress(OSError):
            start_file.unlink()
    return bench.record(run)


class PeakSampler:
    """The highest value of ``read()`` while a run goes on (sampled every 0.2 s in a thread)."""

    def __init__(self, read: Callable[[], int]) -> None:
        self.read = read
        self.peak = read()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-peak", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, self.read())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, self.read())


def token_figures(
    run: dict[str, Any],
    results: list[dict[str, Any]],
    cpu_s: float,
    rss_before: int,
    rss_peak: int,
    clients: int,
) -> None:
    """Scenario T: delta events delivered (a delta carries one word, or several merged),
    skillwire's CPU per delivered delta, and its RSS growth per subscriber (each with its
    stream, in T-many)."""
    deltas = sum(r.get("deltas", 0) for r in results)
    span = run.get("span_s") or 0.0
    run.update(
        deltas_delivered=deltas,
        deltas_per_s=round(deltas / span, 1) if span > 0 else 0.0,
        words_per_delta=round(run["delivered"] / deltas, 2) if deltas else None,
        cpu_s=round(cpu_s, 2),
        cpu_us_per_delta=round(cpu_s * 1e6 / deltas, 1) if deltas else None,
        rss_before_kib=rss_before,
        rss_peak_kib=rss_peak,
        rss_per_stream_kib=round((rss_peak - rss_before) / clients, 1) if clients else None,
    )


def scan_into(run: dict[str, Any], system: System, t0: float | None, t1: float | None) -> None:
    """GC pauses in the measurement window and what each process logged as warnings."""
    for name, proc in system.procs.items():
        if name == "publisher":
            continue
        found = scan_log(proc, t0, t1)
        if "gc" in found:
            run.setdefault("gc_pauses", {})[name] = found["gc"]
        if "log" in found:
            run.setdefault("log_warnings", {})[name] = found["log"]


def idle_run(
    bench: Bench, system_name: str, transport: str, conns_n: int, *, own_task: bool = False
) -> dict[str, Any]:
    """Scenario C: RSS per idle connection, all following one task; ``own_task`` (C-task,
    issue 18): each connection calls its own task that stays running (RSS per connection and
    task, skillwire's every process summed: the redis backbone runs tasks in a worker)."""
    args = bench.args
    label = f"C idle {transport.upper()}{'+task' if own_task else ''} x{conns_n}"
    run: dict[str, Any] = {
        "scenario": "C-task" if own_task else "C",
        "label": label,
        "system": system_name,
        "transport": transport,
        "clients": conns_n,
    }
    system: System | None = None
    procs: list[Proc] = []
    start_file = bench.tmp / f"never-{secrets.token_hex(4)}"
    idle_task = {"n": 1, "start_file": str(start_file), "max_wait": 300}
    try:
        if system_name.startswith("skillwire"):
            system = start_skillwire(
                bench, system_name.split("-", 1)[1], concurrency=conns_n + 64 if own_task else 64
            )
            status, body = http_json(
                system.port,
                "POST",
                "/api/v1/apps/bench/emit",
                {"requests": [idle_task]},
                {"Prefer": "respond-async"},
            )
            if status not in (200, 202):
                raise RuntimeError(f"creating the task: HTTP {status} {body[:200]!r}")
            target = json.loads(body)["task_id"]
            if system.note:
                run["note"] = system.note
            base = {
                "system": "skillwire",
                "transport": transport,
                "port": system.port,
                "key": KEY,
                "terminal": True,
                "app": "bench",
                "skill": "emit",
            }
        elif system_name == FLOOR:
            system = start_floor(bench)
            target = f"idle{secrets.token_hex(3)}"
            base = {"system": "bare", "transport": transport, "port": system.port}
        else:
            system = start_baseline(bench, system_name)
            target = f"idle{secrets.token_hex(3)}"
            base = {"system": system_name, "transport": transport, "port": system.port}
        base.update({"expect": 1, "idle": True, "connect_parallel": 100, "run_timeout_s": 600})
        spec: dict[str, Any] = {"call": idle_task} if own_task else {"target": target}
        measured = list(system.procs.values()) if own_task else [system.server]

        def rss() -> int:
            return sum(p.rss_kib() for p in measured)

        # warm up: a few connections opened and closed, so one-time costs stay out
        warm = start_loaders(bench, base, [spec] * 20, 1)
        warm[0].expect("ready", args.connect_timeout)
        warm[0].send("close")
        with contextlib.suppress(Exception):
            warm[0].popen.wait(10)
        warm[0].stop()
        time.sleep(2 * args.settle)  # 1 s by default (--smoke: less)
        before = rss()
        procs = start_loaders(bench, base, [spec] * conns_n, loader_count(bench, conns_n))
        readies = [p.expect("ready", args.connect_timeout) for p in procs]
        ready = sum(r["ready"] for r in readies)
        time.sleep(3 * args.settle)  # the RSS settles: 1.5 s by default
        after = rss()
        run.update(
            connect_s=max(r["connect_s"] for r in readies),
            ready=ready,
            connect_failed=sum(r["failed"] for r in readies),
            rss_before_kib=before,
            rss_after_kib=after,
            rss_per_conn_kib=round((after - before) / ready, 2) if ready else None,
            lost=conns_n - ready,
            loader_rss_kib=[],
        )
        for p in procs:
            p.send("close")
        for p in procs:
            with contextlib.suppress(Exception):
                res = p.expect("result", 30)
                run["loader_rss_kib"].append(res["rss_kib"])
    except Exception as exc:
        run["error"] = f"{type(exc).__name__}: {exc}"
        log(f"    ! {label} {system_name}: {run['error']}")
    finally:
        for p in procs:
            p.stop(grace=2.0)
        if system is not None:
            system.stop()
            scan_into(run, system, 0.0, 0.0)  # warnings only (no measurement window)
    return bench.record(run)


def idle_tasks_run(bench: Bench, system_name: str, tasks_n: int) -> dict[str, Any]:
    """C-idle-task (issue 18): RSS per running task that nobody follows (created over REST,
    each waiting for a start file that never comes; skillwire's every process summed)."""
    label = f"C idle task x{tasks_n}"
    run: dict[str, Any] = {
        "scenario": "C-idle-task",
        "label": label,
        "system": system_name,
        "transport": "rest",
        "clients": tasks_n,
    }
    system: System | None = None
    start_file = bench.tmp / f"never-{secrets.token_hex(4)}"
    body = {"requests": [{"n": 1, "start_file": str(start_file), "max_wait": 300}]}

    def create(_: int) -> bool:
        status, _body = http_json(
            system.port, "POST", "/api/v1/apps/bench/emit", body, {"Prefer": "respond-async"}
        )
        return status in (200, 202)

    try:
        system = start_skillwire(bench, system_name.split("-", 1)[1], concurrency=tasks_n + 64)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(20)))  # warm up: one-time costs stay out
            time.sleep(2 * bench.args.settle)
            before = sum(p.rss_kib() for p in system.procs.values())
            t0 = time.monotonic()
            created = sum(pool.map(create, range(tasks_n)))
        create_s = time.monotonic() - t0
        time.sleep(3 * bench.args.settle)
        after = sum(p.rss_kib() for p in system.procs.values())
        run.update(
            ready=created,
            connect_s=round(create_s, 1),
            connect_failed=tasks_n - created,
            rss_before_kib=before,
            rss_after_kib=after,
            rss_per_task_kib=round((after - before) / created, 2) if created else None,
            lost=tasks_n - created,
        )
    except Exception as exc:
        run["error"] = f"{type(exc).__name__}: {exc}"
        log(f"    ! {label} {system_name}: {run['error']}")
    finally:
        if system is not None:
            system.stop()
            scan_into(run, system, 0.0, 0.0)
    return bench.record(run)


def call_run(
    bench: Bench,
    scenario: str,
    system: System,
    concurrency: int,
    seconds: float,
    label: str,
    expect_substring: str | None = '"status":"completed"',
) -> dict[str, Any]:
    args = bench.args
    run: dict[str, Any] = {
        "scenario": scenario,
        "label": label,
        "system": system.name,
        "transport": "rest",
        "concurrency": concurrency,
    }
    if system.note:
        run["note"] = system.note
    cfg = {
        "mode": "http",
        "port": system.port,
        "key": KEY,
        "path": "/api/v1/apps/demo/echo",
        "body": json.dumps({"requests": [{"text": "hello"}]}),
        "concurrency": concurrency,
        "duration_s": seconds,
        "max_calls": args.max_calls,
        "warmup_calls": max(50, 4 * concurrency),
        "expect_substring": expect_substring,
    }
    procs = start_loaders(bench, cfg, [], 1)
    loader = procs[0]
    stats0 = (
        bench.redis.commandstats()
        if bench.redis is not None and system.name == "skillwire-redis"
        else None
    )
    try:
        loader.expect("ready", 30)
        loader.expect("measuring", 60)
        spy = pyspy.attach(bench.profile_hook, system.server.pid, bench.tmp)
        cpu0 = {name: p.cpu_ticks() for name, p in system.procs.items()}
        if system.name == "skillwire-redis" and bench.redis is not None:
            cpu0["redis"] = bench.redis.proc.cpu_ticks()
            stats0 = bench.redis.commandstats()
        t0 = time.monotonic()
        window = (time.time(), 0.0)
        try:
            res = loader.expect("result", seconds + 60)
        finally:
            pyspy.detach(spy)
        wall = time.monotonic() - t0
        window = (window[0], time.time())
        cpu1 = {name: p.cpu_ticks() for name, p in system.procs.items()}
        if "redis" in cpu0 and bench.redis is not None:
            cpu1["redis"] = bench.redis.proc.cpu_ticks()
        lat = latencies([res])
        run.update(
            calls=res["ok"],
            failed_calls=res["bad"],
            statuses=res["statuses"],
            calls_per_s=round(res["calls_per_s"], 1),
            lost=res["bad"],
            loader_cpu_pct=[round(res["cpu_pct"] or 0, 1)],
            cpu_pct={n: round(100 * (cpu1[n] - cpu0[n]) / CLK_TCK / wall, 1) for n in cpu0},
            loader_errors=res["errors"][:5],
        )
        run.update(percentiles(lat))
        if stats0 is not None and bench.redis is not None:
            stats1 = bench.redis.commandstats()
            calls = max(1, res["ok"] + res["bad"])
            delta = {k: stats1.get(k, 0) - stats0.get(k, 0) for k in stats1}
            delta = {k: v for k, v in delta.items() if v > 0 and k not in ("info",)}
            run["redis_commands_per_call"] = {
                k: round(v / calls, 2) for k, v in sorted(delta.items(), key=lambda kv: -kv[1])
            }
    except Exception as exc:
        run["error"] = f"{type(exc).__name__}: {exc}"
        log(f"    ! {label}: {run['error']}")
    finally:
        loader.stop(grace=2.0)
        if "window" in locals():
            scan_into(run, system, *window)
    return bench.record(run)
