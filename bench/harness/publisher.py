"""The outside publisher (bench/baselines/publish.py): what a worker process would PUBLISH.

Scenarios A and B use it for the baselines (a rate, or as fast as it goes); scenarios R and
A-win use it for every system, skillwire's ``bench/relay`` tasks included, and there it runs a
closed loop when ``Relay.window`` is set: at most that many deliveries outstanding, learnt from
the loaders' UDP reports (``ack_port``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .environment import BASE_PY, BENCH, SW_PY
from .processes import Proc, free_port
from .session import Bench


@dataclass
class Relay:
    """A relayed run (R, A-win): ``window`` deliveries outstanding (0: at ``rate``)."""

    window: int = 0
    ack_port: int = 0

    @classmethod
    def closed_loop(cls, window: int) -> Relay:
        return cls(window=window, ack_port=free_port() if window else 0)


def start_publisher(
    bench: Bench,
    *,
    mode: str,
    prefix: str,
    count: int,
    n: int,
    rate: float,
    start_file: Path,
    relay: Relay | None = None,
    fanout: int = 1,
) -> Proc:
    """``count`` channels prefix0..prefixN-1 (0: the one channel ``prefix``), ``n`` messages
    each. A relayed run's publisher runs in skillwire's .venv (the same one for every system;
    the bench's --smoke prepares no baselines' venv) and waits for every channel's subscriber."""
    assert bench.redis is not None
    python = SW_PY if relay is not None else BASE_PY
    cmd = [
        str(python),
        str(BENCH / "baselines" / "publish.py"),
        "--mode", mode,
        "--redis-url", bench.redis.url,
        "--prefix", prefix,
        "--n", str(n),
        "--rate", str(rate),
        "--size", str(bench.args.size),
        "--start-file", str(start_file),
        "--max-wait", "120",
    ]  # fmt: skip
    if count:
        cmd += ["--count", str(count)]
    if relay is not None:
        cmd += ["--wait-subscribed", "--fanout", str(fanout)]
        if relay.window:
            cmd += ["--window", str(relay.window), "--ack-port", str(relay.ack_port)]
    return Proc("publisher", cmd, logdir=bench.tmp, capture=True)
