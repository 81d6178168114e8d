"""A worker SIGKILLed mid-answer: the llm/chat request runs again and the Task's text ends
consistent (the new run's answer, not the two runs spliced)."""

from __future__ import annotations

import json
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import _spawn_redis, free_port, scaled
from tests.llm.test_chat import outputs_from
from tests.llm.upstream import FakeUpstream, Plan, running_upstream

from .conftest import SKILLWIRE, Proc, Topology, _env, _wait_ready, start_worker, stop_all

FIRST = [f"first{i} " for i in range(60)]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    """A fake OpenAI-compatible upstream for the module."""
    yield from running_upstream(("alpha",))


@pytest.fixture(scope="module")
def llm_topology(upstream: FakeUpstream) -> Iterator[tuple[Topology, Path]]:
    """redis-server, one gateway and one worker, their LLM bridge on the fake upstream."""
    logs = Path(tempfile.mkdtemp(prefix="skillwire-llm-mp-"))
    port = free_port()
    topo = Topology(port, str(logs), _spawn_redis(port, str(logs)))
    env = _env(topo.redis_url)
    env["SKILLWIRE_LLM__UPSTREAMS__FAKE__BASE_URL"] = upstream.url
    env["SKILLWIRE_LLM__UPSTREAMS__FAKE__MODELS"] = "alpha"
    try:
        gw_port = free_port()
        gateway = Proc(
            "gateway",
            [SKILLWIRE, "serve", "--no-workers", "--host", "127.0.0.1", "--port", str(gw_port)],
            env,
            logs / "gateway.log",
            url=f"http://127.0.0.1:{gw_port}",
        )
        gateway.start()
        topo.gateways.append(gateway)
        topo.workers.append(_llm_worker(topo, "worker0", logs, env))
        _wait_ready(gateway)
        yield topo, logs
    finally:
        stop_all([*topo.gateways, *topo.workers])
        if topo.redis.poll() is None:
            topo.redis.send_signal(signal.SIGTERM)
            topo.redis.wait(scaled(10))


def _llm_worker(topo: Topology, name: str, logs: Path, env: dict[str, str]) -> Proc:
    return start_worker(topo, name, logs, env)


def _task(client: httpx.Client, task_id: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/api/v1/tasks/{task_id}", params=params)
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()
    return task


def test_sigkilled_worker_mid_answer_restarts_cleanly(
    llm_topology: tuple[Topology, Path], upstream: FakeUpstream
) -> None:
    """SIGKILL mid-answer: the request runs again from the start; the Task holds the new text."""
    topo, logs = llm_topology
    upstream.plan("alpha", Plan(pieces=FIRST, delay=0.05), Plan(pieces=["second ", "run"]))
    with topo.client(0) as client:
        response = client.post(
            "/api/v1/apps/llm/chat",
            json={
                "requests": [
                    {"model": "fake/alpha", "messages": [{"role": "user", "content": "x"}]}
                ]
            },
        )
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]
        deadline = time.monotonic() + scaled(20)
        while True:
            task = _task(client, task_id)
            if task["last_seq"] > 12:  # several deltas of the first run are in
                break
            assert time.monotonic() < deadline, task
            time.sleep(0.05)
        topo.workers[0].signal(signal.SIGKILL)
        topo.workers[0].process.wait(scaled(10))  # type: ignore[union-attr]
        env = topo.workers[0].env
        topo.workers[0] = _llm_worker(topo, "worker1", logs, env)
        final = _task(client, task_id, wait=scaled(30))
        assert final["status"] == "completed", final
        events = [
            json.loads(line)
            for line in client.get(
                f"/api/v1/tasks/{task_id}/events", headers={"Accept": "application/x-ndjson"}
            ).text.splitlines()
            if line
        ]
        assert [e["type"] for e in events].count("request.started") == 2
        assert outputs_from(events)[0][0]["text"] == "second run"
        # The chunk stream cannot take text back: replayed from the start, it ends with an
        # error at the restart (the Task holds the new answer).
        replay = client.get(f"/v1/chat/completions/{task_id}/stream")
        frames = [line[6:] for line in replay.text.splitlines() if line.startswith("data: ")]
        assert json.loads(frames[-1])["error"]["code"] == "ANSWER_RESTARTED"
        assert final["requests"][0]["output"][0]["text"] == "second run"
