"""The systems under test: how each is started, and one call to a running system's API.

skillwire runs from the repository's .venv (both backbones); the naive and socket.io
baselines from bench/.venv-baselines; the bare endpoints from skillwire's .venv, so they run
on the very Starlette/uvicorn/websockets versions skillwire runs on.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .environment import BASE_PY, BENCH, GCSTATS, KEY, NO_REDIS, PY_ENV, ROOT, SW_BIN, SW_PY, log
from .processes import Proc, free_port, wait_http, wait_log
from .session import Bench

# Scenario C's floor: its own row, never a baseline the ratios or targets are taken against.
FLOOR = "bare-uvicorn (floor)"


@dataclass
class System:
    name: str  # skillwire-memory, skillwire-redis, naive, socketio, redis-pubsub, bare-*
    port: int
    procs: dict[str, Proc] = field(default_factory=dict)
    note: str = ""

    @property
    def server(self) -> Proc:
        return self.procs["server"]

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()


def http_json(
    port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    req.add_header("Authorization", f"Bearer {KEY}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def skillwire_env(bench: Bench, backbone: str, **extra: Any) -> dict[str, str]:
    env = {
        "PYTHONPATH": f"{ROOT}{os.pathsep}{GCSTATS}",
        "SKILLWIRE_API_KEY": KEY,
        "SKILLWIRE_BACKBONE": backbone,
        "SKILLWIRE_RATE_LIMIT": "0",
        "SKILLWIRE_LOG_LEVEL": "warning",
        # Nothing is measured after a run's SIGTERM: without this each stop waits out the
        # 3 s drain period (half of a smoke run's time).
        "SKILLWIRE_DRAIN_PERIOD": "0",
    }
    # always our own redis-server (or a dead port): never the machine's default instance
    env["SKILLWIRE_REDIS_URL"] = bench.redis.url if bench.redis is not None else NO_REDIS
    if backbone == "redis" and bench.redis is None:
        raise RuntimeError("the redis backbone needs the bench's redis-server")
    env.update({f"SKILLWIRE_{k.upper()}": str(v) for k, v in extra.items()})
    return env


def start_skillwire(
    bench: Bench,
    backbone: str,
    *,
    workers: int = 1,
    concurrency: int = 64,
    apps: bool = True,
    extra_env: dict[str, str] | None = None,
) -> System:
    """memory: workers run in the server; redis: ``workers`` separate worker processes."""
    if backbone == "redis":
        assert bench.redis is not None
        bench.redis.reset()
    port = free_port()
    env = skillwire_env(bench, backbone, concurrency=concurrency)
    env.update(extra_env or {})
    app_args = ["--apps", "bench.apps:bench"] if apps else []
    cmd = [str(SW_BIN), "serve", "--host", "127.0.0.1", "--port", str(port)]
    if backbone == "redis" and workers:
        cmd.append("--no-workers")
    system = System(f"skillwire-{backbone}", port)
    system.procs["server"] = Proc(
        f"skillwire-{backbone}", cmd + app_args, env=env, logdir=bench.tmp
    )
    wait_http(port, proc=system.server)
    if backbone == "redis" and workers:
        try:
            for w in range(workers):
                worker = Proc(
                    f"worker{w}",
                    [str(SW_BIN), "worker", "--concurrency", str(concurrency), *app_args],
                    env=env,
                    logdir=bench.tmp,
                )
                system.procs[f"worker{w}"] = worker
                wait_log(worker, "running")
        except (RuntimeError, TimeoutError) as exc:
            # `skillwire worker` broken: run the work in the server rather than measure nothing
            system.stop()
            why = str(exc).rsplit("|", 1)[-1].strip()[:160]
            if why not in bench.worker_failures:
                bench.worker_failures.append(why)
                log(
                    f"    ! `skillwire worker` did not start ({why}); running the work in the server"
                )
            system = start_skillwire(bench, backbone, workers=0, concurrency=concurrency, apps=apps)
            system.note = f"work in the server process: `skillwire worker` failed ({why})"
    return system


def start_baseline(bench: Bench, name: str) -> System:
    assert bench.redis is not None
    bench.redis.reset()
    port = free_port()
    script = {"naive": "naive_server.py", "socketio": "socketio_server.py"}[name]
    proc = Proc(
        name,
        [
            str(BASE_PY),
            str(BENCH / "baselines" / script),
            "--port",
            str(port),
            "--redis-url",
            bench.redis.url,
        ],
        env=PY_ENV,
        logdir=bench.tmp,
    )
    system = System(name, port, {"server": proc})
    wait_http(port, proc=proc)
    return system


def start_bare(bench: Bench, body_file: Path, loop: str) -> System:
    port = free_port()
    proc = Proc(
        f"bare-{loop}",
        [
            str(SW_PY),
            str(BENCH / "baselines" / "bare_server.py"),
            "--port",
            str(port),
            "--body-file",
            str(body_file),
            "--loop",
            loop,
        ],
        env=PY_ENV,
        logdir=bench.tmp,
    )
    system = System(f"bare-starlette ({loop} loop)", port, {"server": proc})
    wait_http(port, proc=proc)
    return system


def start_floor(bench: Bench) -> System:
    """Scenario C's floor: uvicorn alone, a WebSocket handler that accepts and waits."""
    port = free_port()
    proc = Proc(
        "bare-uvicorn",
        [str(SW_PY), str(BENCH / "baselines" / "bare_uvicorn_server.py"), "--port", str(port)],
        env=PY_ENV,
        logdir=bench.tmp,
    )
    system = System(FLOOR, port, {"server": proc})
    wait_http(port, proc=proc)
    return system
