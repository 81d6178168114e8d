"""Client and provider rate limits, on both backbones."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from skillwire.server import App
from tests.conftest import OTHER_KEY, USER_KEY, RedisServer, RunningServer, wait_until

limited = App("limited")


@limited.skill(mode="quick", provider="acme", model="m1")
async def ask(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def test_headers_on_every_response_and_429_past_the_limit(server_factory) -> None:  # type: ignore[no-untyped-def]
    """X-RateLimit-* on each /api/v1 response; past the limit 429 RATE_LIMITED with Retry-After."""
    server: RunningServer = server_factory({"rate_limit": "3/minute"})
    with server.client(USER_KEY) as client:
        answers = [client.get("/api/v1/apps") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert all(a.headers["x-ratelimit-limit"] == "3" for a in answers)
    assert 0 < int(answers[0].headers["x-ratelimit-reset"]) <= 60
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "RATE_LIMITED"
    assert int(refused.headers["retry-after"]) >= 1
    with server.client(OTHER_KEY) as client:  # another key has its own budget
        assert client.get("/api/v1/apps").status_code == 200
    with server.client() as client:  # health is not limited
        assert "x-ratelimit-limit" not in client.get("/health").headers


def test_a_window_ends_and_the_count_starts_again(server_factory) -> None:  # type: ignore[no-untyped-def]
    """A fixed window opens with its first hit and lasts the limit's period; once it ends
    (its Reset seconds later at most) the key has its whole budget again."""
    server: RunningServer = server_factory({"rate_limit": "2/second"})
    with server.client(USER_KEY) as client:
        answers = [client.get("/api/v1/apps") for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert int(answers[-1].headers["x-ratelimit-reset"]) <= 1
        after: list[Any] = []
        wait_until(lambda: after.append(client.get("/api/v1/apps")) or after[-1].is_success, 3)
        assert after[-1].headers["x-ratelimit-remaining"] == "1"  # the new window's first hit


def test_per_key_limit_overrides_default_and_ip_limits_bad_keys(server_factory) -> None:  # type: ignore[no-untyped-def]
    """A key's own rate_limit wins; requests without a valid key count per IP."""
    keys = [{"name": "tight", "key": "sk_tight", "role": "user", "rate_limit": "1/minute"}]
    server: RunningServer = server_factory({"rate_limit": "2/minute", "keys": keys})
    with server.client("sk_tight") as client:
        assert client.get("/api/v1/apps").status_code == 200
        assert client.get("/api/v1/apps").status_code == 429
    with server.client("sk_wrong") as client:
        codes = [client.get("/api/v1/apps").status_code for _ in range(3)]
    assert codes == [401, 401, 429]


def test_zero_turns_limits_off(server_factory) -> None:  # type: ignore[no-untyped-def]
    """rate_limit = "0" sends no headers and never refuses."""
    server: RunningServer = server_factory({"rate_limit": "0"})
    with server.client() as client:
        responses = [client.get("/api/v1/apps") for _ in range(5)]
    assert all(r.status_code == 200 and "x-ratelimit-limit" not in r.headers for r in responses)


def test_provider_limit_queues_instead_of_failing(server_factory) -> None:  # type: ignore[no-untyped-def]
    """Over a provider limit a sub-request waits with request.queued (retry_at) and then runs."""
    server: RunningServer = server_factory(
        {"provider_limits": {"acme.ask": "2/second"}}, apps=[limited]
    )
    with server.client() as client:
        response = client.post(
            "/api/v1/apps/limited/ask",
            json={"requests": [{"text": str(i)} for i in range(5)]},
            headers={"Prefer": "wait=20"},
        )
        assert response.status_code == 200
        task = response.json()
        assert task["status"] == "completed"
        assert [p["text"] for p in task["previews"]] == ["0", "1", "2", "3", "4"]
        with client.stream(
            "GET",
            f"/api/v1/tasks/{task['task_id']}/events",
            headers={"Accept": "application/x-ndjson"},
        ) as stream:
            events = [json.loads(line) for line in stream.iter_lines() if line]
    queued = [e for e in events if e["type"] == "request.queued"]
    assert len(queued) >= 3
    assert all(
        e["data"]["reason"] == "provider_rate_limit" and e["data"]["retry_at"].endswith("Z")
        for e in queued
    )


async def test_a_websocket_past_the_limit_is_accepted_and_closed_with_1013(server_factory) -> None:  # type: ignore[no-untyped-def]
    """Opening a WebSocket counts against the client's limit; past it the socket closes 1013."""
    import pytest
    from websockets.exceptions import ConnectionClosed

    from tests.channels.helpers import ws, ws_next

    server: RunningServer = server_factory({"rate_limit": "2/minute"})
    for _ in range(2):
        async with ws(server, USER_KEY) as conn:
            await conn.send(json.dumps({"op": "ping", "ref": "p"}))
            assert (await ws_next(conn))["op"] == "pong"
    async with ws(server, USER_KEY) as conn:
        with pytest.raises(ConnectionClosed):
            await ws_next(conn)
        assert conn.close_code == 1013
        assert conn.close_reason == "rate limited"
    async with ws(server, OTHER_KEY) as conn:  # another key has its own budget
        await conn.send(json.dumps({"op": "ping", "ref": "p"}))
        assert (await ws_next(conn))["op"] == "pong"


async def test_websocket_call_ops_count_toward_the_key_limit(server_factory) -> None:  # type: ignore[no-untyped-def]
    """Each WS call op counts like a request; past the limit it gets a RATE_LIMITED op error."""
    from tests.channels.helpers import ws, ws_until

    server: RunningServer = server_factory({"rate_limit": "5/minute"})
    async with ws(server, USER_KEY) as conn:  # the upgrade itself counts: 4 calls remain
        for i in range(8):
            call = {"op": "call", "ref": f"c{i}", "app": "demo", "skill": "echo"}
            await conn.send(json.dumps({**call, "requests": [{"text": str(i)}]}))
        await conn.send(json.dumps({"op": "ping", "ref": "p"}))
        messages = await ws_until(conn, lambda m: m.get("ref") == "p")
        replies = {m["ref"]: m for m in messages if m.get("ref", "").startswith("c")}
        assert [replies[f"c{i}"]["op"] for i in range(8)] == ["accepted"] * 4 + ["error"] * 4
        refused = replies["c7"]["error"]
        assert refused["code"] == "RATE_LIMITED"
        assert refused["details"]["limit"] == 5
        assert 1 <= refused["details"]["retry_after"] <= 60
        assert messages[-1]["op"] == "pong"  # an op error leaves the connection open
    with server.client(USER_KEY) as client:  # HTTP shares the key's budget
        assert client.get("/api/v1/apps").status_code == 429
    with server.client(OTHER_KEY) as client:
        assert client.get("/api/v1/apps").status_code == 200


@pytest.mark.parametrize("backbone", ["redis"])
def test_redis_counters_live_under_the_backbone_prefix(
    server_factory, redis_server: RedisServer
) -> None:  # type: ignore[no-untyped-def]
    """On Redis a limit's counter is one key under sw:rl: that expires with its window, and
    nothing is written under the limits library's own LIMITS: prefix."""
    server: RunningServer = server_factory({"rate_limit": "3/minute"})
    with server.client(USER_KEY) as client:
        assert client.get("/api/v1/apps").status_code == 200
    store = redis.Redis(port=redis_server.port)
    try:
        counters = store.keys("sw:rl:*")
        assert counters == [b"sw:rl:LIMITER/key/user/3/1/minute"]
        assert store.get(counters[0]) == b"1"
        assert 0 < store.pttl(counters[0]) <= 60_000
        assert store.keys("LIMITS*") == []
    finally:
        store.close()


@pytest.mark.parametrize("backbone", ["redis"])
def test_two_gateways_on_one_redis_share_a_limit(server_factory) -> None:  # type: ignore[no-untyped-def]
    """Requests to either of two gateways on one Redis count against one budget."""
    first: RunningServer = server_factory({"rate_limit": "3/minute"})
    second: RunningServer = server_factory({"rate_limit": "3/minute"})
    with first.client(USER_KEY) as one, second.client(USER_KEY) as two:
        answers = [one.get("/api/v1/apps"), two.get("/api/v1/apps"), one.get("/api/v1/apps")]
        assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0"]
        assert two.get("/api/v1/apps").status_code == 429
        assert one.get("/api/v1/apps").status_code == 429


@pytest.mark.parametrize("backbone", ["redis"])
def test_the_limiter_opens_no_redis_connection_of_its_own(
    server_factory, redis_server: RedisServer
) -> None:  # type: ignore[no-untyped-def]
    """Rate-limit checks use the backbone's pooled connections: counting requests opens no
    new connection to Redis (CLIENT LIST, before and after)."""
    db = 15  # a database no other test's server uses: CLIENT LIST shows each connection's
    url = f"redis://127.0.0.1:{redis_server.port}/{db}"
    # No in-process workers: nothing else of the gateway takes pooled connections meanwhile.
    server: RunningServer = server_factory(
        {"rate_limit": "100/minute", "redis_url": url, "workers": False}
    )
    store = redis.Redis(port=redis_server.port)

    def gateway_connections() -> int:
        return sum(1 for client in store.client_list() if client["db"] == str(db))

    try:
        before = gateway_connections()
        assert before > 0  # the backbone's own (pub/sub, pool)
        with server.client(USER_KEY) as client:
            answers = [client.get("/api/v1/apps") for _ in range(10)]
        assert [a.headers["x-ratelimit-remaining"] for a in answers][-1] == "90"
        assert gateway_connections() == before
    finally:
        store.close()


async def test_a_check_the_store_does_not_answer_in_time_is_allowed(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A counter store that does not answer within CHECK_TIMEOUT lets the request through
    (fail open) instead of holding it."""
    import asyncio

    from skillwire.server import _ratelimit
    from skillwire.server._config import load_config

    class Hung:
        async def hit(self, name: str, window: float) -> tuple[int, float]:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    monkeypatch.setattr(_ratelimit, "CHECK_TIMEOUT", 0.05)
    config = load_config(environ={}, overrides={"rate_limit": "3/minute"})
    limits = _ratelimit.RateLimits(config, windows=Hung())
    item = _ratelimit.parse_limit("3/minute")
    assert item is not None
    assert await asyncio.wait_for(limits.hit(item, "key", "user"), 5) is None


def test_an_app_on_the_memory_backbone_loads_no_redis_client() -> None:
    """With the memory backbone, building the app (rate limits on) imports neither redis-py nor
    the Redis backbone: the limiter's counters on Redis are the backbone's, loaded with it."""
    import subprocess
    import sys

    program = (
        "import sys\n"
        "from skillwire.server import create_app, load_config\n"
        "create_app(load_config(environ={}, overrides={'api_key': 'sk_x', 'rate_limit': '9/minute'}))\n"
        "print(sorted(m for m in sys.modules if m == 'redis' or '.backbone.redis' in m))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
