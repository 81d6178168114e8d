"""py-spy on a server for one run's measurement window, and what its samples say.

``attach``/``detach`` are no-ops unless the profile (``--profile``, ``--only P``) set a hook:
every run calls them, so the profiled runs measure exactly what the table's runs measure.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class PySpyHook:
    pyspy: Path  # the py-spy binary (bench/.venv-baselines)
    format: str  # "raw" (collapsed stacks) or "flamegraph"
    path: Path  # where py-spy writes


def attach(hook: PySpyHook | None, pid: int, logdir: Path) -> subprocess.Popen[bytes] | None:
    if not hook:
        return None
    spy_log = open(logdir / "py-spy.log", "ab")  # noqa: SIM115
    spy = subprocess.Popen(
        [
            str(hook.pyspy),
            "record",
            "--pid",
            str(pid),
            "--rate",
            "200",
            "--nonblocking",
            "--format",
            hook.format,
            "-o",
            str(hook.path),
        ],
        stdout=spy_log,
        stderr=spy_log,
        start_new_session=True,
    )
    time.sleep(1.0)  # attached before the first event
    return spy


def for_worker(hook: PySpyHook | None) -> PySpyHook | None:
    """The same profile of the first worker process, next to the server's: ``<name>-worker0``."""
    if hook is None:
        return None
    return PySpyHook(hook.pyspy, hook.format, hook.path.with_stem(hook.path.stem + "-worker0"))


def detach(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is None:
        return
    with contextlib.suppress(ProcessLookupError):
        spy.send_signal(signal.SIGINT)
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait(5)


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
