"""The bench suite's orchestrator (run it through ``bench/run``).

Starts its own redis-server (127.0.0.1, a free port), the systems under test (skillwire on
both backbones, and the baselines from bench/.venv-baselines), the Node load generator
(bench/loader) split over one or more processes, and measures each scenario of issue 8:

  A  fan-out: one task (channel, room) to K subscribers over WS and SSE, at full speed
     (delivered events/s) and at a fixed rate (publish->receive latency)
  B  many tasks: K clients, each following its own task
  C  idle connections: server RSS per open WebSocket / SSE stream
  D  quick demo/echo calls over REST, redis backbone, separate worker processes
  E  overhead: a quick call answered inline vs a bare Starlette endpoint

Everything it starts it stops again, by PID; every wait is bounded. It prints one table
(and the raw figures) and writes JSON (bench/results/latest.json by default).
"""

from __future__ import annotations

import argparse
import array
import contextlib
import datetime as dt
import json
import os
import platform
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SW_BIN = ROOT / ".venv" / "bin" / "skillwire"
SW_PY = ROOT / ".venv" / "bin" / "python"
BASE_PY = BENCH / ".venv-baselines" / "bin" / "python"
LOADER = BENCH / "loader" / "load.js"
KEY = "sk_bench_" + secrets.token_hex(12)
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Children get this environment plus their own settings: no SKILLWIRE_* or BENCH_* from the
# caller's shell (a stray SKILLWIRE_REDIS_URL must never point a bench server elsewhere).
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("SKILLWIRE_", "BENCH_"))}
NO_REDIS = "redis://127.0.0.1:9/0"  # for runs without our redis: nothing listens there
GCSTATS = BENCH / "tools" / "gcstats"  # on PYTHONPATH of every Python server: logs GC pauses
PY_ENV = {"PYTHONPATH": str(GCSTATS)}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- processes -------------------------------------------------------------------------------
class Proc:
    """A child process this run started; stopped by its PID, never by name."""

    registry: list[Proc] = []

    def __init__(
        self,
        name: str,
        cmd: list[str],
        *,
        env: dict[str, str] | None = None,
        logdir: Path,
        stdin: bool = False,
        capture: bool = False,
    ) -> None:
        self.name = name
        self.log_path = logdir / f"{name}-{secrets.token_hex(3)}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**CLEAN_ENV, **(env or {})},
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else self._log,
            stderr=self._log,
            start_new_session=True,  # a Ctrl-C reaches us; we stop our children by PID
        )
        self.pid = self.popen.pid
        Proc.registry.append(self)
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.progress: dict[str, Any] | None = None
        if capture:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                self.lines.put(json.loads(line))
            except json.JSONDecodeError:
                self._log.write(raw)
                self._log.flush()
        self.lines.put(None)

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"{self.name}: no {event!r} within {timeout:.0f}s (last progress {self.progress}; {self.tail()})"
                )
            try:
                item = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if item is None:
                raise RuntimeError(f"{self.name} exited before {event!r}: {self.tail()}")
            if item.get("event") == "progress":
                self.progress = item
            if item.get("event", event) == event:
                return item

    def send(self, line: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.popen.stdin is not None
            self.popen.stdin.write((line + "\n").encode())
            self.popen.stdin.flush()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu_ticks(self) -> int:
        try:
            with open(f"/proc/{self.pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            return 0

    def rss_kib(self) -> int:
        with contextlib.suppress(OSError), open(f"/proc/{self.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def tail(self, lines: int = 8) -> str:
        with contextlib.suppress(OSError):
            self._log.flush()
            text = self.log_path.read_text(errors="replace").strip().splitlines()
            return " | ".join(text[-lines:])
        return ""

    def stop(self, grace: float = 5.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(5)
        with contextlib.suppress(OSError):
            if self.popen.stdin:
                self.popen.stdin.close()
        self._log.close()
        if self in Proc.registry:
            Proc.registry.remove(self)

    @classmethod
    def stop_all(cls) -> None:
        for proc in list(reversed(cls.registry)):
            with contextlib.suppress(Exception):
                proc.stop(grace=2.0)


_IDS = re.compile(r"tsk_[A-Za-z0-9_-]+|req_[0-9a-f]+|conn \\d+|\\d+\\.\\d+\\.\\d+\\.\\d+:\\d+")


def scan_log(proc: Proc, t0: float | None = None, t1: float | None = None) -> dict[str, Any]:
    """GC pauses (GCSTAT lines, within [t0, t1] when given) and warnings/errors a process logged."""
    pauses: list[tuple[int, float]] = []
    messages: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in proc.log_path.read_text(errors="replace").splitlines():
            if line.startswith("GCSTAT "):
                fields = dict(kv.split("=", 1) for kv in line.split()[1:])
                t = float(fields["t"])
                if (t0 is None or t >= t0) and (t1 is None or t <= t1):
                    pauses.append((int(fields["gen"]), float(fields["ms"])))
            elif any(
                m in line
                for m in ('"level": "warning"', '"level": "error"', "WARNING", "ERROR", "Traceback")
            ):
                text = line
                with contextlib.suppress(ValueError, TypeError):
                    text = json.loads(line).get("message", line)
                text = _IDS.sub("…", text)[:200]
                messages[text] = messages.get(text, 0) + 1
    summary: dict[str, Any] = {}
    if pauses:
        summary["gc"] = {
            "count": len(pauses),
            "gen2": sum(1 for g, _ in pauses if g == 2),
            "max_ms": max(ms for _, ms in pauses),
            "total_ms": round(sum(ms for _, ms in pauses), 1),
        }
    if messages:
        summary["log"] = sorted(messages.items(), key=lambda kv: -kv[1])[:4]
    return summary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(
    port: int, path: str = "/healthz", timeout: float = 30.0, proc: Proc | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited: {proc.tail()}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp,
        ):
            if resp.status == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"no answer on 127.0.0.1:{port}{path} within {timeout:.0f}s")


def wait_log(proc: Proc, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited: {proc.tail()}")
        with contextlib.suppress(OSError):
            if text in proc.log_path.read_text(errors="replace"):
                return
        time.sleep(0.1)
    raise TimeoutError(f"{proc.name}: {text!r} not seen within {timeout:.0f}s")


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


# -- redis -----------------------------------------------------------------------------------
class Redis:
    """Our own redis-server on a free 127.0.0.1 port (never the machine's instance)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = Proc(
            "redis",
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--protected-mode",
                "yes",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
                "--maxclients",
                "10000",
            ],
            logdir=workdir,
        )
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError):
                if self.command("PING") == "PONG":
                    break
            if time.monotonic() > deadline or not self.proc.alive():
                raise RuntimeError(f"redis-server did not start: {self.proc.tail()}")
            time.sleep(0.05)

    def command(self, *args: str) -> Any:
        """One command over a fresh connection (RESP2; enough for PING/FLUSHALL/INFO)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
            sock.sendall(payload.encode())
            data = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                if data[:1] in (b"+", b"-", b":") and data.endswith(b"\r\n"):
                    break
                if data[:1] == b"$":
                    head, _, rest = data.partition(b"\r\n")
                    if len(rest) >= int(head[1:]) + 2:
                        break
        if data[:1] == b"+":
            return data[1:-2].decode()
        if data[:1] == b"-":
            raise RuntimeError(data[1:-2].decode())
        if data[:1] == b"$":
            return data.partition(b"\r\n")[2][:-2].decode()
        return data.decode()

    def commandstats(self) -> dict[str, int]:
        stats: dict[str, int] = {}
        for line in self.command("INFO", "commandstats").splitlines():
            if line.startswith("cmdstat_"):
                name, _, rest = line[len("cmdstat_") :].partition(":")
                calls = dict(kv.split("=", 1) for kv in rest.split(","))
                stats[name] = int(calls["calls"])
        return stats

    def reset(self) -> None:
        self.command("FLUSHALL")
        self.command("CONFIG", "RESETSTAT")


# -- systems under test ----------------------------------------------------------------------
@dataclass
class System:
    name: str  # skillwire-memory, skillwire-redis, naive, socketio, redis-pubsub, bare
    port: int
    procs: dict[str, Proc] = field(default_factory=dict)
    note: str = ""

    @property
    def server(self) -> Proc:
        return self.procs["server"]

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="skillwire-bench-"))
        self.redis: Redis | None = None
        self.runs: list[dict[str, Any]] = []
        self.worker_failures: list[str] = []
        self._run_started = time.monotonic()

    # systems
    def sw_env(self, backbone: str, **extra: Any) -> dict[str, str]:
        env = {
            "PYTHONPATH": f"{ROOT}{os.pathsep}{GCSTATS}",
            "SKILLWIRE_API_KEY": KEY,
            "SKILLWIRE_BACKBONE": backbone,
            "SKILLWIRE_RATE_LIMIT": "0",
            "SKILLWIRE_LOG_LEVEL": "warning",
        }
        # always our own redis-server (or a dead port): never the machine's default instance
        env["SKILLWIRE_REDIS_URL"] = self.redis.url if self.redis is not None else NO_REDIS
        if backbone == "redis" and self.redis is None:
            raise RuntimeError("the redis backbone needs the bench's redis-server")
        env.update({f"SKILLWIRE_{k.upper()}": str(v) for k, v in extra.items()})
        return env

    def start_skillwire(
        self,
        backbone: str,
        *,
        workers: int = 1,
        concurrency: int = 64,
        apps: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> System:
        """memory: workers run in the server; redis: ``workers`` separate worker processes."""
        if backbone == "redis":
            assert self.redis is not None
            self.redis.reset()
        port = free_port()
        env = self.sw_env(backbone, concurrency=concurrency)
        env.update(extra_env or {})
        app_args = ["--apps", "bench.apps:bench"] if apps else []
        cmd = [str(SW_BIN), "serve", "--host", "127.0.0.1", "--port", str(port)]
        if backbone == "redis" and workers:
            cmd.append("--no-workers")
        system = System(f"skillwire-{backbone}", port)
        system.procs["server"] = Proc(
            f"skillwire-{backbone}", cmd + app_args, env=env, logdir=self.tmp
        )
        wait_http(port, proc=system.server)
        if backbone == "redis" and workers:
            try:
                for w in range(workers):
                    worker = Proc(
                        f"worker{w}",
                        [str(SW_BIN), "worker", "--concurrency", str(concurrency), *app_args],
                        env=env,
                        logdir=self.tmp,
                    )
                    system.procs[f"worker{w}"] = worker
                    wait_log(worker, "running")
            except (RuntimeError, TimeoutError) as exc:
                # `skillwire worker` broken: run the work in the server rather than measure nothing
                system.stop()
                why = str(exc).rsplit("|", 1)[-1].strip()[:160]
                if why not in self.worker_failures:
                    self.worker_failures.append(why)
                    log(
                        f"    ! `skillwire worker` did not start ({why}); running the work in the server"
                    )
                system = self.start_skillwire(
                    backbone, workers=0, concurrency=concurrency, apps=apps
                )
                system.note = f"work in the server process: `skillwire worker` failed ({why})"
        return system

    def start_baseline(self, name: str) -> System:
        assert self.redis is not None
        self.redis.reset()
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
                self.redis.url,
            ],
            env=PY_ENV,
            logdir=self.tmp,
        )
        system = System(name, port, {"server": proc})
        wait_http(port, proc=proc)
        return system

    def start_bare(self, body_file: Path, loop: str) -> System:
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
            logdir=self.tmp,
        )
        system = System(f"bare-starlette ({loop} loop)", port, {"server": proc})
        wait_http(port, proc=proc)
        return system

    # loaders
    def loaders(self, base: dict[str, Any], conns: list[dict[str, Any]], count: int) -> list[Proc]:
        procs = []
        count = max(1, min(count, len(conns) or 1))
        for k in range(count):
            cfg = dict(base)
            cfg["conns"] = conns[k::count]
            cfg["lat_file"] = str(self.tmp / f"lat-{secrets.token_hex(4)}.bin")
            cfg.setdefault("hard_timeout_s", self.args.run_timeout + 120)
            path = self.tmp / f"loader-{secrets.token_hex(4)}.json"
            path.write_text(json.dumps(cfg))
            procs.append(
                Proc(
                    f"loader{k}",
                    ["node", str(LOADER), str(path)],
                    logdir=self.tmp,
                    stdin=True,
                    capture=True,
                )
            )
        return procs

    def loader_count(self, conns: int) -> int:
        if self.args.loaders:
            return self.args.loaders
        return 2 if conns >= 100 else 1

    # -- A and B: streams ------------------------------------------------------------------
    def stream_run(
        self,
        scenario: str,
        system_name: str,
        transport: str,
        clients: int,
        n: int,
        rate: float,
        *,
        own_task: bool,
        label: str,
    ) -> dict[str, Any]:
        args = self.args
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
        start_file = self.tmp / f"start-{secrets.token_hex(4)}"
        system: System | None = None
        procs: list[Proc] = []
        try:
            if system_name.startswith("skillwire"):
                backbone = system_name.split("-", 1)[1]
                concurrency = max(64, clients + 16) if own_task else 64
                system = self.start_skillwire(backbone, concurrency=concurrency)
                request = {
                    "n": n,
                    "rate": rate,
                    "size": args.size,
                    "start_file": str(start_file),
                    "max_wait": 120,
                }
                base = {
                    "system": "skillwire",
                    "transport": transport,
                    "port": system.port,
                    "key": KEY,
                    "app": "bench",
                    "skill": "emit",
                    "terminal": True,
                }
                if own_task:
                    conns = [{"call": request} for _ in range(clients)]
                else:
                    status, body = http_json(
                        system.port,
                        "POST",
                        "/api/v1/apps/bench/emit",
                        {"requests": [request]},
                        {"Prefer": "respond-async"},
                    )
                    if status not in (200, 202):
                        raise RuntimeError(f"creating the task: HTTP {status} {body[:200]!r}")
                    task_id = json.loads(body)["task_id"]
                    conns = [{"target": task_id} for _ in range(clients)]
            else:
                assert self.redis is not None
                if system_name == "redis-pubsub":
                    self.redis.reset()
                    system = System("redis-pubsub", self.redis.port, {"server": self.redis.proc})
                    base = {"system": "redis", "transport": "redis", "port": self.redis.port}
                else:
                    system = self.start_baseline(system_name)
                    base = {"system": system_name, "transport": transport, "port": system.port}
                prefix = f"bench{secrets.token_hex(3)}"
                targets = (
                    [f"{prefix}{j}" for j in range(clients)] if own_task else [prefix] * clients
                )
                conns = [{"target": t} for t in targets]
                pub_cmd = [
                    str(BASE_PY),
                    str(BENCH / "baselines" / "publish.py"),
                    "--mode",
                    "socketio" if system_name == "socketio" else "redis",
                    "--redis-url",
                    self.redis.url,
                    "--prefix",
                    prefix,
                    "--n",
                    str(n),
                    "--rate",
                    str(rate),
                    "--size",
                    str(args.size),
                    "--start-file",
                    str(start_file),
                    "--max-wait",
                    "120",
                ]
                if own_task:
                    pub_cmd += ["--count", str(clients)]
                publisher = Proc("publisher", pub_cmd, logdir=self.tmp, capture=True)
                system.procs["publisher"] = publisher
            if system.note:
                run["note"] = system.note
            base.update({"expect": n, "run_timeout_s": args.run_timeout, "connect_parallel": 100})
            procs = self.loaders(base, conns, self.loader_count(clients))
            readies = [p.expect("ready", args.connect_timeout) for p in procs]
            failed = sum(r["failed"] for r in readies)
            run["connect_s"] = max(r["connect_s"] for r in readies)
            run["connect_failed"] = failed
            if failed:
                run["connect_errors"] = [e for r in readies for e in r["errors"]][:5]
            time.sleep(args.settle)
            watched = dict(system.procs)
            if self.redis is not None and system_name not in ("redis-pubsub", "skillwire-memory"):
                watched["redis"] = self.redis.proc
            spy = self._start_profiler(system.server.pid)
            window = [time.time(), 0.0]
            cpu0 = {name: p.cpu_ticks() for name, p in watched.items()}
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
                self._stop_profiler(spy)
            run["cpu_pct"] = {
                name: round(100 * (cpu1[name] - cpu0[name]) / CLK_TCK / wall, 1) for name in watched
            }
            run["loader_cpu_pct"] = [round(r["cpu_pct"] or 0, 1) for r in results]
            run["loader_rss_kib"] = [r["rss_kib"] for r in results]
            if "publisher" in system.procs:
                with contextlib.suppress(Exception):
                    run["publisher"] = system.procs["publisher"].expect("", 30)
            self._stream_figures(run, results)
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
                self._scan(
                    run, system, *(window if "window" in locals() and window[1] else (None, None))
                )
            with contextlib.suppress(OSError):
                start_file.unlink()
        self.runs.append(run)
        self._say(run)
        return run

    def _scan(
        self, run: dict[str, Any], system: System, t0: float | None, t1: float | None
    ) -> None:
        """GC pauses in the measurement window and what each process logged as warnings."""
        for name, proc in system.procs.items():
            if name == "publisher":
                continue
            found = scan_log(proc, t0, t1)
            if "gc" in found:
                run.setdefault("gc_pauses", {})[name] = found["gc"]
            if "log" in found:
                run.setdefault("log_warnings", {})[name] = found["log"]

    def _start_profiler(self, pid: int) -> subprocess.Popen[bytes] | None:
        hook = getattr(self, "profile_hook", None)
        if not hook:
            return None
        spy_log = open(self.tmp / "py-spy.log", "ab")  # noqa: SIM115
        spy = subprocess.Popen(
            [
                str(hook["pyspy"]),
                "record",
                "--pid",
                str(pid),
                "--rate",
                "200",
                "--nonblocking",
                "--format",
                hook["format"],
                "-o",
                str(hook["path"]),
            ],
            stdout=spy_log,
            stderr=spy_log,
            start_new_session=True,
        )
        time.sleep(1.0)  # attached before the first event
        return spy

    def _stop_profiler(self, spy: subprocess.Popen[bytes] | None) -> None:
        if spy is None:
            return
        with contextlib.suppress(ProcessLookupError):
            spy.send_signal(signal.SIGINT)
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait(5)

    def _stream_figures(self, run: dict[str, Any], results: list[dict[str, Any]]) -> None:
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
        lat = self._latencies(results)
        run.update(percentiles(lat))

    def _latencies(self, results: list[dict[str, Any]]) -> list[float]:
        values = array.array("d")
        for r in results:
            path = r.get("lat_file")
            if path and os.path.exists(path):
                values.frombytes(Path(path).read_bytes())
        return sorted(values)

    # -- C: idle connections ---------------------------------------------------------------
    def idle_run(self, system_name: str, transport: str, conns_n: int) -> dict[str, Any]:
        args = self.args
        label = f"C idle {transport.upper()} x{conns_n}"
        run: dict[str, Any] = {
            "scenario": "C",
            "label": label,
            "system": system_name,
            "transport": transport,
            "clients": conns_n,
        }
        system: System | None = None
        procs: list[Proc] = []
        start_file = self.tmp / f"never-{secrets.token_hex(4)}"
        try:
            if system_name.startswith("skillwire"):
                system = self.start_skillwire(system_name.split("-", 1)[1])
                status, body = http_json(
                    system.port,
                    "POST",
                    "/api/v1/apps/bench/emit",
                    {"requests": [{"n": 1, "start_file": str(start_file), "max_wait": 300}]},
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
                }
            else:
                system = self.start_baseline(system_name)
                target = f"idle{secrets.token_hex(3)}"
                base = {"system": system_name, "transport": transport, "port": system.port}
            base.update({"expect": 1, "idle": True, "connect_parallel": 100, "run_timeout_s": 600})
            # warm up: a few connections opened and closed, so one-time costs stay out
            warm = self.loaders(base, [{"target": target}] * 20, 1)
            warm[0].expect("ready", args.connect_timeout)
            warm[0].send("close")
            with contextlib.suppress(Exception):
                warm[0].popen.wait(10)
            warm[0].stop()
            time.sleep(1.0)
            before = system.server.rss_kib()
            procs = self.loaders(base, [{"target": target}] * conns_n, self.loader_count(conns_n))
            readies = [p.expect("ready", args.connect_timeout) for p in procs]
            ready = sum(r["ready"] for r in readies)
            time.sleep(1.5)
            after = system.server.rss_kib()
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
                self._scan(run, system, 0.0, 0.0)  # warnings only (no measurement window)
        self.runs.append(run)
        self._say(run)
        return run

    # -- D and E: calls --------------------------------------------------------------------
    def call_run(
        self,
        scenario: str,
        system: System,
        concurrency: int,
        seconds: float,
        label: str,
        expect_substring: str | None = '"status":"completed"',
    ) -> dict[str, Any]:
        args = self.args
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
        procs = self.loaders(cfg, [], 1)
        loader = procs[0]
        stats0 = (
            self.redis.commandstats()
            if self.redis is not None and system.name == "skillwire-redis"
            else None
        )
        try:
            loader.expect("ready", 30)
            loader.expect("measuring", 60)
            spy = self._start_profiler(system.server.pid)
            cpu0 = {name: p.cpu_ticks() for name, p in system.procs.items()}
            if system.name == "skillwire-redis" and self.redis is not None:
                cpu0["redis"] = self.redis.proc.cpu_ticks()
                stats0 = self.redis.commandstats()
            t0 = time.monotonic()
            window = (time.time(), 0.0)
            try:
                res = loader.expect("result", seconds + 60)
            finally:
                self._stop_profiler(spy)
            wall = time.monotonic() - t0
            window = (window[0], time.time())
            cpu1 = {name: p.cpu_ticks() for name, p in system.procs.items()}
            if "redis" in cpu0 and self.redis is not None:
                cpu1["redis"] = self.redis.proc.cpu_ticks()
            lat = self._latencies([res])
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
            if stats0 is not None and self.redis is not None:
                stats1 = self.redis.commandstats()
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
                self._scan(run, system, *window)
        self.runs.append(run)
        self._say(run)
        return run

    # -- reporting -------------------------------------------------------------------------
    def _say(self, run: dict[str, Any]) -> None:
        run["run_wall_s"] = round(time.monotonic() - self._run_started, 1)
        self._run_started = time.monotonic()
        if "error" in run:
            return
        if run["scenario"] == "C":
            log(
                f"    {run['label']:<28} {run['system']:<18} {run.get('rss_per_conn_kib')} KiB/conn "
                f"({run.get('ready')} open, connect {run.get('connect_s', 0):.1f}s)"
            )
        elif "calls_per_s" in run:
            log(
                f"    {run['label']:<28} {run['system']:<18} {run['calls_per_s']:>9,.0f} calls/s "
                f"p50 {fmt_ms(run.get('p50_ms'))} p99 {fmt_ms(run.get('p99_ms'))} ms  failed {run['lost']}"
            )
        else:
            log(
                f"    {run['label']:<28} {run['system']:<18} {run['events_per_s']:>9,.0f} ev/s "
                f"p50 {fmt_ms(run.get('p50_ms'))} p99 {fmt_ms(run.get('p99_ms'))} max {fmt_ms(run.get('max_ms'))} ms "
                f"lost {run['lost']}  loader CPU {run['loader_cpu_pct']}%"
            )


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
        out.append(keep)
    return out


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


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.2f}"
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


# -- MONITOR: how many Redis round trips one call takes, and from which process --------------
def socket_owners(pids: dict[str, int]) -> dict[int, str]:
    """local TCP port -> process name, for the given PIDs (via /proc/PID/fd and /proc/net/tcp)."""
    inode_owner: dict[str, str] = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inode_owner[target[8:-1]] = name
    owners: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as fh:
            next(fh)
            for line in fh:
                parts = line.split()
                port = int(parts[1].rsplit(":", 1)[1], 16)
                if parts[9] in inode_owner:
                    owners[port] = inode_owner[parts[9]]
    return owners


def monitor_one_call(redis: Redis, system: System) -> dict[str, Any]:
    """Trace one demo/echo call with MONITOR: top-level commands (round trips) per process."""
    sock = socket.create_connection(("127.0.0.1", redis.port), timeout=5)
    sock.sendall(b"*1\r\n$7\r\nMONITOR\r\n")
    sock.recv(100)  # +OK
    time.sleep(0.3)  # let idle pollers show up once: we subtract a quiet window below
    sock.settimeout(0.05)
    buf = b""

    def drain(seconds: float) -> bytes:
        nonlocal buf
        end = time.monotonic() + seconds
        got = b""
        while time.monotonic() < end:
            with contextlib.suppress(TimeoutError, socket.timeout):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk
        return got

    quiet = drain(1.0)  # background traffic (claim loops, lease renewals) for one second
    status, body = http_json(
        system.port, "POST", "/api/v1/apps/demo/echo", {"requests": [{"text": "trace"}]}
    )
    traced = drain(1.0)
    sock.close()
    owners = socket_owners({n: p.pid for n, p in system.procs.items()})

    def parse(raw: bytes) -> list[tuple[str, str]]:
        out = []
        for line in raw.decode(errors="replace").splitlines():
            if not line.startswith("+") or "[" not in line:
                continue
            where = line.split("[", 1)[1].split("]", 1)[0]  # "0 127.0.0.1:5555" or "0 lua"
            command = line.split("]", 1)[1].strip().split(" ", 1)[0].strip('"').lower()
            source = where.split(" ", 1)[1]
            if source != "lua":
                port = int(source.rsplit(":", 1)[1]) if ":" in source else 0
                source = owners.get(port, source)
            out.append((source, command))
        return out

    def summarise(entries: list[tuple[str, str]]) -> dict[str, dict[str, int]]:
        summary: dict[str, dict[str, int]] = {}
        in_multi: dict[str, bool] = {}
        for source, command in entries:
            key = "inside scripts" if source == "lua" else source
            bucket = summary.setdefault(key, {})
            if source != "lua":
                if command == "multi":
                    in_multi[source] = True
                if in_multi.get(source) and command not in ("multi", "exec"):
                    command = f"{command} (in MULTI)"
                if command == "exec":
                    in_multi[source] = False
            bucket[command] = bucket.get(command, 0) + 1
        return summary

    last_seq = json.loads(body).get("last_seq") if status == 200 else None
    return {
        "status": status,
        "events": last_seq,
        "background_per_s": summarise(parse(quiet)),
        "during_call_1s": summarise(parse(traced)),
    }


# -- profile ---------------------------------------------------------------------------------
_ROOT_FRAMES = (
    "<module>",
    "main ",
    "serve ",
    "run ",
    "Runner.run ",
    "BaseEventLoop.",
    "Handle._run ",
)


def _function(frame: str) -> str:
    """``Outbox.push (server/channels/_outbox.py:50)`` -> ``Outbox.push (server/channels/_outbox.py)``."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def top_frames(raw_path: Path, limit: int = 20) -> dict[str, Any]:
    """From py-spy's collapsed stacks (--format raw): where the server's CPU time goes.

    self: time spent in the function itself; lines: the same by source line; total: time
    in the function and what it calls (event-loop root frames left out: py-spy does not
    always see a coroutine's whole chain, so they would be undercounted anyway).
    """
    self_fn: dict[str, int] = {}
    self_line: dict[str, int] = {}
    total_fn: dict[str, int] = {}
    samples = 0
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = [f.strip() for f in stack.split(";") if "(" in f]
        if not frames:
            continue
        samples += count
        leaf = frames[-1]
        self_line[leaf] = self_line.get(leaf, 0) + count
        self_fn[_function(leaf)] = self_fn.get(_function(leaf), 0) + count
        for fn in {_function(f) for f in frames if not f.startswith(_ROOT_FRAMES)}:
            total_fn[fn] = total_fn.get(fn, 0) + count

    def top(counts: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
        return [(frame, round(100 * c / samples, 1)) for frame, c in ranked] if samples else []

    return {
        "samples": samples,
        "self": top(self_fn),
        "lines": top(self_line),
        "total": top(total_fn),
    }


# -- the suite -------------------------------------------------------------------------------
def csv_ints(text: str) -> list[int]:
    return [int(x) for x in str(text).split(",") if x.strip()]


def csv_strs(text: str) -> list[str]:
    return [x.strip() for x in str(text).split(",") if x.strip()]


def env(name: str, default: str) -> str:
    return os.environ.get(f"BENCH_{name}", default)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--smoke", action="store_true", help="one tiny scenario A run, skillwire memory only (CI)"
    )
    p.add_argument(
        "--only",
        default=env("ONLY", "A,B,C,D,E"),
        help="scenarios to run (A,B,C,D,E; P: the profile)",
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
    if set(csv_strs(args.only.upper())) == {"P"} and args.json == default_json:
        args.json = str(BENCH / "results" / "profile.json")  # a profile leaves the table alone
    if args.smoke:
        args.only = "A"
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


def versions() -> dict[str, Any]:
    def pkgs(python: Path, names: list[str]) -> dict[str, str]:
        if not python.exists():
            return {}
        code = (
            "import importlib.metadata as m, json, sys\n"
            "out = {}\n"
            "for n in sys.argv[1:]:\n"
            "    try: out[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: pass\n"
            "print(json.dumps(out))"
        )
        res = subprocess.run(
            [str(python), "-c", code, *names], capture_output=True, text=True, timeout=30
        )
        return json.loads(res.stdout or "{}")

    def node_pkg(name: str) -> str | None:
        with contextlib.suppress(OSError, ValueError):
            return json.loads(
                (BENCH / "loader" / "node_modules" / name / "package.json").read_text()
            )["version"]
        return None

    common = [
        "starlette",
        "uvicorn",
        "uvloop",
        "httptools",
        "websockets",
        "redis",
        "hiredis",
        "sse-starlette",
    ]
    redis_version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "python": platform.python_version(),
        "skillwire_venv": pkgs(
            SW_PY, ["skillwire-server", "skillwire-protocol", "msgspec", *common]
        ),
        "baselines_venv": pkgs(
            BASE_PY, ["python-socketio", "python-engineio", "broadcaster", "py-spy", *common]
        ),
        "node": subprocess.run(
            ["node", "--version"], capture_output=True, text=True
        ).stdout.strip(),
        "loader": {"ws": node_pkg("ws"), "socket.io-client": node_pkg("socket.io-client")},
        "redis_server": redis_version.split(" sha=")[0],
    }


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) // 1024} MiB"
    git = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = bool(
        subprocess.run(
            ["git", "status", "--porcelain", "--", "server", "protocol"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory": mem,
        "kernel": platform.release(),
        "commit": git + ("+uncommitted server changes" if dirty else ""),
        "loadavg_at_start": os.getloadavg(),
    }


def source_hash() -> str:
    """A digest of the code under test (protocol/ and server/ sources, committed or not)."""
    import hashlib

    digest = hashlib.sha256()
    for part in ("protocol", "server"):
        for path in sorted((ROOT / part).rglob("*.py")):
            digest.update(str(path.relative_to(ROOT)).encode())
            with contextlib.suppress(OSError):
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def run_suite(args: argparse.Namespace) -> dict[str, Any]:
    bench = Bench(args)
    code_at_start = source_hash()
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    only = set(csv_strs(args.only.upper()))
    backbones = csv_strs(args.backbones)
    transports = csv_strs(args.transports)
    baselines = not args.no_baselines
    needs_redis = "redis" in backbones or baselines
    started = time.monotonic()
    if needs_redis and not ({"A", "B", "C", "D", "P"} & only):
        needs_redis = False
    if needs_redis:
        bench.redis = Redis(bench.tmp)
    sw_systems = [f"skillwire-{b}" for b in backbones]

    def systems(transport: str) -> list[str]:
        names = list(sw_systems)
        if baselines:
            names.append("naive")
            if transport == "ws":
                names.append("socketio")
        return names

    def scenario_a() -> None:
        log("A  fan-out: one task, K subscribers")
        for k, n in zip(csv_ints(args.a_k), csv_ints(args.a_events), strict=True):
            for transport in transports:
                for name in systems(transport):
                    bench.stream_run(
                        "A", name, transport, k, n, args.a_rate, own_task=False,
                        label=f"A fan-out {transport.upper()} K={k}",
                    )  # fmt: skip
            if baselines:
                bench.stream_run(
                    "A", "redis-pubsub", "redis", k, n, args.a_rate, own_task=False,
                    label=f"A fan-out raw pub/sub K={k}",
                )  # fmt: skip
        if args.lat_k:
            per_s = args.lat_k * args.lat_rate
            for transport in transports:
                for name in systems(transport):
                    bench.stream_run(
                        "A-lat", name, transport, args.lat_k, args.lat_events, args.lat_rate,
                        own_task=False,
                        label=f"A latency {transport.upper()} K={args.lat_k} @{per_s:,.0f}/s",
                    )  # fmt: skip

    def scenario_b() -> None:
        log(f"B  many tasks: {args.b_clients} clients, one task each")
        for transport in transports:
            for name in systems(transport):
                bench.stream_run(
                    "B", name, transport, args.b_clients, args.b_events, args.b_rate, own_task=True,
                    label=f"B own task {transport.upper()} x{args.b_clients}",
                )  # fmt: skip

    def scenario_c() -> None:
        log(f"C  idle connections: {args.c_conns}")
        for transport in transports:
            for name in systems(transport):
                bench.idle_run(name, transport, args.c_conns)

    def scenario_d(first: bool) -> None:
        log(f"D  demo/echo over REST, redis backbone, {args.d_workers} worker processes")
        system = bench.start_skillwire("redis", workers=args.d_workers, apps=False)
        try:
            for c in csv_ints(args.d_conc):
                bench.call_run("D", system, c, args.d_seconds, f"D echo REST c={c}")
            if first:
                assert bench.redis is not None
                bench.d_trace = monitor_one_call(bench.redis, system)  # type: ignore[attr-defined]
        finally:
            system.stop()
        if "memory" in backbones:
            system = bench.start_skillwire("memory", apps=False)
            try:
                for c in csv_ints(args.d_conc):
                    bench.call_run("D", system, c, args.d_seconds, f"D echo REST c={c} (inline)")
            finally:
                system.stop()

    def scenario_e() -> None:
        log("E  overhead: quick call inline vs a bare Starlette endpoint")
        system = bench.start_skillwire("memory", apps=False)
        body_file = bench.tmp / "echo-task.json"
        try:
            _, body = http_json(
                system.port, "POST", "/api/v1/apps/demo/echo", {"requests": [{"text": "hello"}]}
            )
            body_file.write_bytes(body)
            bench.call_run("E", system, 1, args.e_seconds, "E quick call c=1")
        finally:
            system.stop()
        for loop in ("auto", "asyncio"):
            bare = bench.start_bare(body_file, loop)
            try:
                bench.call_run("E", bare, 1, args.e_seconds, "E quick call c=1")
            finally:
                bare.stop()

    try:
        for rep in range(max(1, args.repeat)):
            if args.repeat > 1:
                log(f"== repeat {rep + 1} of {args.repeat}")
            if "A" in only:
                scenario_a()
            if "B" in only:
                scenario_b()
            if "C" in only:
                scenario_c()
            if "D" in only and "redis" in backbones:
                scenario_d(first=rep == 0)
            if "E" in only:
                scenario_e()
        bench.runs = collapse_repeats(bench.runs)
        if args.profile or "P" in only:
            profile_runs(bench, args, backbones)
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
        "d_trace": getattr(bench, "d_trace", None),
        "profiles": getattr(bench, "profiles", {}),
    }


def short_path(path: str) -> str:
    path = re.sub(r"^.*/site-packages/", "", path)
    path = re.sub(r"^.*/lib/python3\.\d+/", "", path)
    return path.removeprefix(str(ROOT) + "/").removeprefix("server/skillwire/")


def memtrace_run(bench: Bench, conns_n: int) -> dict[str, Any]:
    """Scenario C under tracemalloc: which allocation sites grow per idle WebSocket."""
    out_file = bench.tmp / "tracemalloc.txt"
    system = bench.start_skillwire("memory", extra_env={"BENCH_TRACEMALLOC_OUT": str(out_file)})
    procs: list[Proc] = []
    try:
        start_file = bench.tmp / f"never-{secrets.token_hex(4)}"
        _, body = http_json(
            system.port,
            "POST",
            "/api/v1/apps/bench/emit",
            {"requests": [{"n": 1, "start_file": str(start_file), "max_wait": 300}]},
            {"Prefer": "respond-async"},
        )
        target = json.loads(body)["task_id"]
        base = {
            "system": "skillwire",
            "transport": "ws",
            "port": system.port,
            "key": KEY,
            "terminal": True,
            "expect": 1,
            "idle": True,
            "connect_parallel": 100,
            "run_timeout_s": 600,
        }
        warm = bench.loaders(base, [{"target": target}] * 20, 1)
        warm[0].expect("ready", 60)
        warm[0].send("close")
        warm[0].stop()
        time.sleep(1.0)
        os.kill(system.server.pid, signal.SIGUSR1)  # baseline snapshot
        time.sleep(1.0)
        before = system.server.rss_kib()
        procs = bench.loaders(base, [{"target": target}] * conns_n, bench.loader_count(conns_n))
        ready = sum(p.expect("ready", 180)["ready"] for p in procs)
        time.sleep(1.5)
        after = system.server.rss_kib()
        os.kill(system.server.pid, signal.SIGUSR1)  # compare and write
        deadline = time.monotonic() + 60
        while not out_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        rows = []
        traced = 0
        for line in out_file.read_text().splitlines():
            size, count, site = line.split(" ", 2)
            traced += int(size)
            rows.append(
                (short_path(site), round(int(size) / ready, 1), round(int(count) / ready, 2))
            )
        return {
            "conns": ready,
            "rss_per_conn_kib": round((after - before) / ready, 1),
            "traced_per_conn_kib": round(traced / ready / 1024, 1),
            "top": rows[:25],
            "note": "tracemalloc on (slower, and RSS includes its own bookkeeping)",
        }
    finally:
        for p in procs:
            p.send("close")
            p.stop(grace=2.0)
        system.stop()


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


def profile_runs(bench: Bench, args: argparse.Namespace, backbones: list[str]) -> None:
    """A K=1000 WS with py-spy on the server: collapsed stacks + the top frames."""
    pyspy = BENCH / ".venv-baselines" / "bin" / "py-spy"
    if not pyspy.exists():
        log("    ! py-spy not installed in bench/.venv-baselines; skipping the profile")
        return
    bench.profiles = {}  # type: ignore[attr-defined]
    out_dir = Path(args.json).resolve().parent
    for backbone in backbones:
        name = f"skillwire-{backbone}"
        raw = out_dir / f"profile-A1000-ws-{backbone}.txt"
        svg = out_dir / f"profile-A1000-ws-{backbone}.svg"
        for fmt, path in (("raw", raw), ("flamegraph", svg)):
            log(f"P  profiling {name} under A WS K=1000 ({fmt})")
            hook = {"format": fmt, "path": path, "pyspy": pyspy}
            bench.profile_hook = hook  # type: ignore[attr-defined]
            try:
                # long enough for a few thousand samples (1M deliveries)
                n = 1000
                run = bench.stream_run(
                    "P",
                    name,
                    "ws",
                    1000,
                    n,
                    0.0,
                    own_task=False,
                    label=f"profile ({fmt}) WS K=1000",
                )
            finally:
                bench.profile_hook = None  # type: ignore[attr-defined]
            bench.runs.remove(run)
            if fmt == "raw" and raw.exists():
                bench.profiles[name] = {
                    "raw": str(raw),
                    "svg": str(svg),
                    "run": {
                        k: run.get(k)
                        for k in ("events_per_s", "lost", "p50_ms", "p99_ms", "cpu_pct")
                    },
                    **top_frames(raw),
                }
    log("P  profiling skillwire-memory under E (quick calls, c=1)")
    raw = out_dir / "profile-E-memory.txt"
    system = bench.start_skillwire("memory", apps=False)
    bench.profile_hook = {"format": "raw", "path": raw, "pyspy": pyspy}  # type: ignore[attr-defined]
    try:
        run = bench.call_run("P", system, 1, max(args.e_seconds, 6.0), "profile E c=1")
        bench.runs.remove(run)
        if raw.exists():
            bench.profiles["skillwire-memory E"] = {
                "raw": str(raw),
                "run": {k: run.get(k) for k in ("calls_per_s", "p50_ms", "p99_ms", "cpu_pct")},
                **top_frames(raw),
            }
    finally:
        bench.profile_hook = None  # type: ignore[attr-defined]
        system.stop()
    log("P  tracemalloc: memory per idle WebSocket (skillwire-memory)")
    try:
        bench.profiles["memory per idle WebSocket"] = memtrace_run(bench, min(args.c_conns, 2000))
    except Exception as exc:
        log(f"    ! tracemalloc run: {type(exc).__name__}: {exc}")


# -- the table -------------------------------------------------------------------------------
LOADER_BOUND = 85.0  # a loader process above this CPU% may be what limits the run
BASELINE_FOR = {
    "A": "naive",
    "A-lat": "naive",
    "B": "naive",
    "C": "naive",
    "E": "bare-starlette (auto loop)",
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
        elif scen == "A-lat":
            a, b = run.get("p99_ms"), ref.get("p99_ms")
        else:
            a, b = run.get("events_per_s"), ref.get("events_per_s")
        if a is not None and b:
            run["ratio"] = round(a / b, 2)
            run["ratio_of"] = {"C": "RSS/conn", "E": "p50", "A-lat": "p99"}.get(
                scen, "events/s"
            ) + f" vs {ref_name}"


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
    ]
    rows = [head]
    for r in runs:
        if "error" in r:
            rows.append(
                [r["label"], r["system"], "ERROR", "", "", "", "", "", "", "", r["error"][:60]]
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
                fmt_ms(r.get("p50_ms")) if r["scenario"] != "C" else "",
                fmt_ms(r.get("p99_ms")) if r["scenario"] != "C" else "",
                fmt_ms(r.get("max_ms")) if r["scenario"] != "C" else "",
                str(r.get("lost", "")),
                "" if r.get("rss_per_conn_kib") is None else f"{r['rss_per_conn_kib']:.1f}",
                "" if r.get("ratio") is None else f"{r['ratio']:.2f}x",
                (
                    "/".join(f"{c:.0f}" for c in r.get("loader_cpu_pct", []))
                    + (" (!)" if max(r.get("loader_cpu_pct") or [0]) > LOADER_BOUND else "")
                )
                if r["scenario"] != "C"
                else "",
                "" if server_cpu is None else f"{server_cpu:.0f}",
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
    """Where skillwire stands against each target of issue 8."""
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
    for r in find(scenario="E"):
        if r["system"].startswith("skillwire") and r.get("ratio") is not None:
            found.append(
                {
                    "target": "E: p50 ratio <= 1.5 vs bare Starlette",
                    "system": r["system"],
                    "value": f"{r['ratio']:.2f}",
                    "met": r["ratio"] <= 1.5,
                }
            )
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
        " C: RSS per connection vs naive; E: p50 vs a bare Starlette endpoint (uvloop, as uvicorn picks).",
        "lost = sent - delivered (every subscriber is expected to get every event). loader CPU%: one figure"
        f" per loader process over the run; (!) marks a loader above {LOADER_BOUND:.0f}% (it may be the limit).",
        "",
        "targets (issue 8):",
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
        if r["scenario"] in ("A", "A-lat", "B"):
            bits.append(
                f"delivered {r['delivered']}/{r['expected']} in {r['span_s']}s, dups {r['dups']}, "
                f"gaps {r['gaps']}, reconnects {r['reconnects']}, retried ops {r.get('retries', 0)}, connect {r.get('connect_s', 0):.1f}s"
                f" (failed {r.get('connect_failed', 0)}), samples {r.get('samples')}"
            )
            if r.get("publisher"):
                pub = r["publisher"]
                bits.append(
                    f"publisher {pub.get('published')} msgs in {pub.get('elapsed_s', 0):.2f}s"
                )
        elif r["scenario"] == "C":
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
                f"{name}: {prof['conns']} connections, RSS {prof['rss_per_conn_kib']} KiB/conn, "
                f"traced by tracemalloc {prof['traced_per_conn_kib']} KiB/conn ({prof['note']}); "
                "grown per connection, by allocation site (bytes, objects):",
            ]
            out += [f"    {b:8.0f} B {c:6.2f}  {site}" for site, b, c in prof["top"][:20]]
            continue
        out += [
            "",
            f"profile {name if name.endswith(' E') else name + ' A WS K=1000'}"
            f" ({prof['samples']} samples, {prof['run']}):",
            "  self time:",
        ]
        out += [f"    {pct:5.1f}%  {frame}" for frame, pct in prof["self"][:15]]
        out.append("  self time by line:")
        out += [f"    {pct:5.1f}%  {frame}" for frame, pct in prof["lines"][:10]]
        out.append("  total time (incl. callees):")
        out += [f"    {pct:5.1f}%  {frame}" for frame, pct in prof["total"][:15]]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
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
    errors = [r for r in result["runs"] if "error" in r]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
