"""Scenario D's trace: how many Redis round trips one call takes, and from which process.

Redis MONITOR shows every command with the client's address; /proc maps that address back to
the process (gateway, worker) that owns the socket.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from typing import Any

from .redis_server import Redis
from .systems import System, http_json


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
