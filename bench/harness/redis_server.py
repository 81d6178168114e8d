"""The bench's own redis-server, and the few commands it sends it without a client library."""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path
from typing import Any

from .processes import Proc, free_port


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
