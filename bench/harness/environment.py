"""Where the bench's pieces live, and what every child process it starts inherits."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
SW_BIN = ROOT / ".venv" / "bin" / "skillwire"
SW_PY = ROOT / ".venv" / "bin" / "python"
BASE_PY = BENCH / ".venv-baselines" / "bin" / "python"
LOADER = BENCH / "loader" / "load.js"
KEY = "sk_bench_" + secrets.token_hex(12)
# Children get this environment plus their own settings: no SKILLWIRE_* or BENCH_* from the
# caller's shell (a stray SKILLWIRE_REDIS_URL must never point a bench server elsewhere).
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("SKILLWIRE_", "BENCH_"))}
NO_REDIS = "redis://127.0.0.1:9/0"  # for runs without our redis: nothing listens there
GCSTATS = BENCH / "tools" / "gcstats"  # on PYTHONPATH of every Python server: logs GC pauses
PY_ENV = {"PYTHONPATH": str(GCSTATS)}


def log(message: str) -> None:
    # progress goes to stderr: stdout carries only the final report
    print(message, file=sys.stderr, flush=True)
