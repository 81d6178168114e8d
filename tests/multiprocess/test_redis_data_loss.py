"""A gateway (`serve --no-workers`) and a `worker` on a Redis that restarts empty: calls
complete again without restarting either process."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import _spawn_redis, free_port, scaled, wait_until
from tests.multiprocess.conftest import (
    SKILLWIRE,
    Proc,
    Topology,
    _env,
    _wait_ready,
    start_worker,
    stop_all,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def deployment() -> Iterator[Topology]:
    """redis-server without persistence (a restart empties it), one gateway, one worker."""
    logs = Path(tempfile.mkdtemp(prefix="skillwire-loss-"))
    port = free_port()
    topology = Topology(port, str(logs), _spawn_redis(port, str(logs)))
    try:
        gateway_port = free_port()
        argv = [SKILLWIRE, "serve", "--no-workers", "--host", "127.0.0.1"]
        gateway = Proc(
            "gateway",
            [*argv, "--port", str(gateway_port)],
            _env(topology.redis_url),
            logs / "gateway.log",
            url=f"http://127.0.0.1:{gateway_port}",
        )
        gateway.start()
        topology.gateways.append(gateway)
        _wait_ready(gateway)
        topology.workers.append(start_worker(topology, "worker", logs))
        yield topology
    finally:
        stop_all([*topology.gateways, *topology.workers])
        if topology.redis.poll() is None:
            topology.stop_redis()


def _echo(deployment: Topology) -> httpx.Response:
    with deployment.client(0) as client:
        return client.post(
            "/api/v1/apps/demo/echo",
            json={"requests": [{"text": "after"}]},
            headers={"Prefer": f"wait={scaled(10):g}"},
        )


def test_a_worker_whose_backoff_grew_claims_again_after_redis_restarts_empty(
    deployment: Topology,
) -> None:
    """Redis is down long enough for the worker's claim backoff to pass half the lease, then
    comes back empty: the next calls complete, the log says Redis lost its data."""
    assert _echo(deployment).json()["status"] == "completed"
    log = deployment.workers[0].log
    failures_before = log.read_text().count("cannot claim work")
    deployment.stop_redis()
    # Backoff 0.1, 0.2, 0.4, 0.8, 1.6 s: from the fifth failure on, a claim comes more than
    # half the lease (1 s here) after the last, so it begins with the lease reclaim.
    wait_until(
        lambda: log.read_text().count("cannot claim work") >= failures_before + 5,
        timeout=scaled(20),
        interval=0.1,
    )
    # Back, empty (it answers PING on return). No /readyz here: its check would recreate the
    # group itself, and this test is about the worker recovering on its own.
    deployment.redis = _spawn_redis(deployment.redis_port, deployment.redis_dir)
    started = time.monotonic()
    for _ in range(3):
        answer = _echo(deployment)
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "completed"
    assert time.monotonic() - started < scaled(15)
    assert "redis lost its data" in log.read_text()
