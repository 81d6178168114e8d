"""One suite run's shared state: its options, scratch directory, redis-server and results."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from .environment import log
from .pyspy import PySpyHook
from .redis_server import Redis
from .report import progress_line


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="skillwire-bench-"))
        self.redis: Redis | None = None
        self.runs: list[dict[str, Any]] = []
        self.worker_failures: list[str] = []
        self._run_started = time.monotonic()
        # set by the profile (--profile, --only P) around the runs it samples
        self.profile_hook: PySpyHook | None = None
        self.profiles: dict[str, Any] = {}
        self.d_trace: dict[str, Any] | None = None  # scenario D: one call under Redis MONITOR

    def record(self, run: dict[str, Any]) -> dict[str, Any]:
        """Keep a finished run (failed or not) and say how it went."""
        self.runs.append(run)
        run["run_wall_s"] = round(time.monotonic() - self._run_started, 1)
        self._run_started = time.monotonic()
        line = progress_line(run)
        if line is not None:
            log(line)
        return run
