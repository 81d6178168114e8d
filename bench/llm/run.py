"""The LLM bridge bench: N concurrent streams from a local upstream emitting R tokens/s each,
read directly from the upstream, through ``/v1/chat/completions`` and through ``llm/chat`` over
the WebSocket. Reports the latency each gateway path adds per token (p50, p99), the gateway's CPU
per token and its RSS per active stream. Targets: p99 added under 10 ms, CPU under 20 µs/token.

    .venv/bin/python -m bench.llm.run                   # 500 streams, 50 tokens/s, 10 s each
    .venv/bin/python -m bench.llm.run --streams 100 --seconds 5     # a reduced run

Every process it starts is stopped by its PID. Results go to bench/results/llm.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PY = str(ROOT / ".venv" / "bin" / "python")
SKILLWIRE = str(ROOT / ".venv" / "bin" / "skillwire")
RESULTS = ROOT / "bench" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET_P99_MS = 10.0
TARGET_CPU_US = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Child:
    """A process this bench started; stopped by its PID."""

    def __init__(self, argv: list[str], env: dict[str, str], name: str, logdir: Path) -> None:
        logdir.mkdir(parents=True, exist_ok=True)
        self.log = open(logdir / f"llm-{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=self.log, start_new_session=True
        )
        self.pid = self.popen.pid
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            self.lines.append(raw.decode("utf-8", "replace").strip())

    def result(self, timeout: float) -> dict[str, Any]:
        self.popen.wait(timeout)
        self._reader.join(5)
        for line in reversed(self.lines):
            if line.startswith("{"):
                found: dict[str, Any] = json.loads(line)
                return found
        raise RuntimeError(f"no result from pid {self.pid}: {self.lines[-5:]}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log.close()


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def run_clients(
    mode: str, url: str, key: str, args: argparse.Namespace, gateway: Child | None
) -> dict[str, Any]:
    """The streams of one mode, split over ``--clients`` reader processes; the gateway's CPU
    over the whole run and its RSS at the peak."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    per = args.streams // args.clients
    tokens = int(args.seconds * args.rate)
    before_cpu = cpu_seconds(gateway.pid) if gateway else 0.0
    idle_rss = rss_bytes(gateway.pid) if gateway else 0
    readers = [
        Child(
            [
                PY,
                "-m",
                "bench.llm.client",
                "--mode",
                mode,
                "--url",
                url,
                "--key",
                key,
                "--streams",
                str(per),
                "--tokens",
                str(tokens),
                "--ramp",
                str(args.ramp),
            ],
            env,
            f"client-{mode}-{i}",
            args.logdir,
        )
        for i in range(args.clients)
    ]
    peak_rss = idle_rss
    if gateway is not None:  # RSS sampled while every stream is open
        deadline = time.monotonic() + args.ramp + args.seconds
        while time.monotonic() < deadline and any(r.popen.poll() is None for r in readers):
            peak_rss = max(peak_rss, rss_bytes(gateway.pid))
            time.sleep(0.2)
    results = [r.result(args.seconds * 10 + 120) for r in readers]
    for r in readers:
        r.stop()
    cpu = cpu_seconds(gateway.pid) - before_cpu if gateway else 0.0
    delivered = sum(r["tokens"] for r in results)
    return {
        "mode": mode,
        "streams": per * args.clients,
        "tokens": delivered,
        "expected": sum(r["expected"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "first_error": next((r["first_error"] for r in results if r["first_error"]), None),
        # the median of the readers' percentiles (one reader: its own)
        "p50_ms": sorted(r["p50_ms"] for r in results)[len(results) // 2],
        "p99_ms": sorted(r["p99_ms"] for r in results)[len(results) // 2],
        "seconds": max(r["seconds"] for r in results),
        "gateway_cpu_us_per_token": round(cpu / delivered * 1e6, 2)
        if delivered and gateway
        else None,
        "gateway_rss_per_stream_kib": round(
            (peak_rss - idle_rss) / 1024 / max(per * args.clients, 1), 1
        )
        if gateway
        else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0, help="tokens per second per stream")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each stream lasts")
    parser.add_argument("--ramp", type=float, default=2.0, help="seconds over which streams start")
    parser.add_argument(
        "--clients", type=int, default=0, help="reader processes (default: one per 125 streams)"
    )
    parser.add_argument("--modes", default="direct,openai,ws")
    parser.add_argument("--out", type=Path, default=RESULTS / "llm.json", help="the JSON report")
    parser.add_argument(
        "--logdir", type=Path, default=RESULTS, help="where the processes' logs go (llm-*.log)"
    )
    args = parser.parse_args()
    # bench/run stops this process by SIGTERM: the finally below still stops its children
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # One Python reader keeps up with ~6,000 tokens/s without queueing them itself.
    args.clients = args.clients or max(1, args.streams // 125)

    key = "sk_bench_" + secrets.token_hex(12)
    up_port, gw_port = free_port(), free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SKILLWIRE_")}
    children: list[Child] = []
    try:
        upstream = Child(
            [PY, "-m", "bench.llm.upstream", "--port", str(up_port), "--rate", str(args.rate)],
            {**clean, "PYTHONPATH": str(ROOT)},
            "upstream",
            args.logdir,
        )
        children.append(upstream)
        wait_http(f"http://127.0.0.1:{up_port}/v1/models")
        gateway = Child(
            [SKILLWIRE, "serve", "--host", "127.0.0.1", "--port", str(gw_port)],
            {
                **clean,
                "SKILLWIRE_API_KEY": key,
                "SKILLWIRE_RATE_LIMIT": "0",
                "SKILLWIRE_LOG_LEVEL": "warning",
                "SKILLWIRE_DRAIN_PERIOD": "0",  # stopped after the measurement: no 503 period
                "SKILLWIRE_CONCURRENCY": str(args.streams * 2 + 64),
                "SKILLWIRE_MAX_PARALLEL": "5",
                "SKILLWIRE_LLM__UPSTREAMS__BENCH__BASE_URL": f"http://127.0.0.1:{up_port}/v1",
                "SKILLWIRE_LLM__UPSTREAMS__BENCH__MODELS": "bench",
                "SKILLWIRE_LLM__UPSTREAMS__BENCH__MAX_CONNECTIONS": str(args.streams * 2 + 16),
            },
            "gateway",
            args.logdir,
        )
        children.append(gateway)
        wait_http(f"http://127.0.0.1:{gw_port}/healthz")
        rows = []
        for mode in args.modes.split(","):
            log(
                f"llm bench: {mode}, {args.streams} streams x {args.seconds:g} s at {args.rate:g} tokens/s"
            )
            if mode == "direct":
                rows.append(run_clients(mode, f"http://127.0.0.1:{up_port}", key, args, None))
            else:
                rows.append(run_clients(mode, f"http://127.0.0.1:{gw_port}", key, args, gateway))
            log(json.dumps(rows[-1]))
    finally:
        for child in reversed(children):
            child.stop()
    direct = next((r for r in rows if r["mode"] == "direct"), None)
    report = {"streams": args.streams, "rate": args.rate, "seconds": args.seconds, "runs": rows}
    lines = [
        f"{'path':<8} {'tokens':>9} {'p50 ms':>8} {'p99 ms':>8} {'+p50':>7} {'+p99':>7} {'µs CPU/tok':>10} {'KiB/stream':>10}"
    ]
    for row in rows:
        added50 = row["p50_ms"] - direct["p50_ms"] if direct and row is not direct else None
        added99 = row["p99_ms"] - direct["p99_ms"] if direct and row is not direct else None
        row["added_p50_ms"], row["added_p99_ms"] = added50, added99
        lines.append(
            f"{row['mode']:<8} {row['tokens']:>9} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
            f"{'' if added50 is None else f'{added50:.2f}':>7} {'' if added99 is None else f'{added99:.2f}':>7} "
            f"{'' if row['gateway_cpu_us_per_token'] is None else row['gateway_cpu_us_per_token']:>10} "
            f"{'' if row['gateway_rss_per_stream_kib'] is None else row['gateway_rss_per_stream_kib']:>10}"
        )
    lines.append(
        f"targets: added p99 < {TARGET_P99_MS:g} ms, gateway CPU < {TARGET_CPU_US:g} µs per token"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
