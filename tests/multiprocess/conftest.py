"""The topology of docker-compose.yml, without docker: one redis-server, two gateways
(`serve --no-workers`) and two `worker` processes, each a real process of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY, _spawn_redis, free_port, scaled

ROOT = Path(__file__).resolve().parents[2]
SKILLWIRE = str(Path(sys.executable).with_name("skillwire"))


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    url: str = ""

    def start(self) -> None:
        with self.log.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                self.argv, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(scaled(15))
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Topology:
    redis_port: int
    redis_dir: str
    redis: subprocess.Popen[bytes]
    gateways: list[Proc] = field(default_factory=list)
    workers: list[Proc] = field(default_factory=list)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def client(self, gateway: int) -> httpx.Client:
        return httpx.Client(
            base_url=self.gateways[gateway].url,
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=scaled(30),
        )

    def stop_redis(self) -> None:
        self.redis.terminate()
        self.redis.wait(scaled(15))

    def start_redis(self) -> None:
        self.redis = _spawn_redis(self.redis_port, self.redis_dir, persistent=True)


def _env(redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLWIRE_")}
    env.update(
        {
            "SKILLWIRE_API_KEY": ADMIN_KEY,
            "SKILLWIRE_BACKBONE": "redis",
            "SKILLWIRE_REDIS_URL": redis_url,
            "SKILLWIRE_WORK_LEASE": "2",
            "SKILLWIRE_HEARTBEAT_INTERVAL": "0.5",
            "SKILLWIRE_SHUTDOWN_GRACE": "1",
            # No test here is about the drain period (tests/server/test_shutdown.py is): a
            # stopped gateway exits at once instead of listening 3 s more, which each module's
            # teardown and each restart here used to wait out.
            "SKILLWIRE_DRAIN_PERIOD": "0",
            # on, so the limiter runs against redis (and must fail open while redis is down)
            "SKILLWIRE_RATE_LIMIT": "1000000/minute",
            "SKILLWIRE_APPS": "tests.multiprocess.sample_apps:lab",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def _wait_ready(proc: Proc) -> None:
    deadline = time.monotonic() + scaled(20)
    while time.monotonic() < deadline:
        assert proc.process is not None
        if proc.process.poll() is not None:
            raise RuntimeError(f"{proc.name} exited: {proc.log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{proc.url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} did not become ready")


def stop_all(procs: list[Proc]) -> None:
    """Stop processes together: each shutdown (grace, lease release) overlaps the others'."""
    for proc in procs:
        if proc.process is not None and proc.process.poll() is None:
            proc.process.terminate()
    for proc in procs:
        proc.stop()


def start_worker(
    topology: Topology, name: str, logs: Path, env: dict[str, str] | None = None
) -> Proc:
    """A `worker` process, once it runs; ``env`` defaults to ``_env`` of the topology's redis."""
    worker = Proc(
        name,
        [SKILLWIRE, "worker", "--concurrency", "16"],
        _env(topology.redis_url) if env is None else env,
        logs / f"{name}.log",
    )
    worker.start()
    deadline = time.monotonic() + scaled(20)
    while "running" not in worker.log.read_text():
        if time.monotonic() > deadline or (worker.process and worker.process.poll() is not None):
            raise RuntimeError(f"{name} did not start: {worker.log.read_text()[-2000:]}")
        time.sleep(0.05)
    return worker


@pytest.fixture(scope="module")
def topology() -> Iterator[Topology]:
    """redis-server (with an append-only file, so it may restart), 2 gateways, 2 workers."""
    logs = Path(tempfile.mkdtemp(prefix="skillwire-mp-"))
    port = free_port()
    topo = Topology(port, str(logs), _spawn_redis(port, str(logs), persistent=True))
    try:
        for i in range(2):
            gw_port = free_port()
            gateway = Proc(
                f"gateway{i}",
                [SKILLWIRE, "serve", "--no-workers", "--host", "127.0.0.1", "--port", str(gw_port)],
                _env(topo.redis_url),
                logs / f"gateway{i}.log",
                url=f"http://127.0.0.1:{gw_port}",
            )
            gateway.start()
            topo.gateways.append(gateway)
        for i in range(2):
            topo.workers.append(start_worker(topo, f"worker{i}", logs))
        for gateway in topo.gateways:
            _wait_ready(gateway)
        yield topo
    finally:
        stop_all([*topo.gateways, *topo.workers])
        if topo.redis.poll() is None:
            topo.redis.send_signal(signal.SIGTERM)
            topo.redis.wait(scaled(10))
