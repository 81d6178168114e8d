"""Child processes the bench starts: each stopped by its PID, its log read back afterwards.

A Proc also reads its JSON-lines stdout (the loaders' protocol), samples its CPU time and RSS
from /proc, and ``scan_log`` pulls the GC pauses (bench/tools/gcstats) and warnings it logged.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .environment import CLEAN_ENV, ROOT

CLK_TCK = os.sysconf("SC_CLK_TCK")


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


_IDS = re.compile(r"tsk_[A-Za-z0-9_-]+|req_[0-9a-f]+|conn \d+|\d+\.\d+\.\d+\.\d+:\d+")


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
