"""What a result was measured on: the machine, the package versions, the code under test."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from .environment import BASE_PY, BENCH, ROOT, SW_PY


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
        found: dict[str, str] = json.loads(res.stdout or "{}")
        return found

    def node_pkg(name: str) -> str | None:
        with contextlib.suppress(OSError, ValueError):
            version: str = json.loads(
                (BENCH / "loader" / "node_modules" / name / "package.json").read_text()
            )["version"]
            return version
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
    digest = hashlib.sha256()
    for part in ("protocol", "server"):
        for path in sorted((ROOT / part).rglob("*.py")):
            digest.update(str(path.relative_to(ROOT)).encode())
            with contextlib.suppress(OSError):
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
