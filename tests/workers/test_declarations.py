"""Skill declarations and remote work in the backbone, on both backbones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from skillwire.protocol import SkillDeclaration, SkillMode
from skillwire.server.backbone import Backbone, MemoryBackbone, WorkItem
from skillwire.server.backbone.redis import RedisBackbone
from tests.conftest import RedisServer, scaled


@pytest.fixture
async def store(backbone: str, request: pytest.FixtureRequest) -> AsyncIterator[Backbone]:
    made: Backbone
    if backbone == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        redis_server.flush()
        made = RedisBackbone(redis_server.url, lease=0.3)
    else:
        made = MemoryBackbone()
    await made.start()
    yield made
    await made.close()


def declared(schema: dict[str, object] | None = None, **fields: object) -> SkillDeclaration:
    return SkillDeclaration(
        app="ext", skill="upper", input_schema=schema or {"type": "object"}, **fields
    )


async def test_the_first_declaration_fixes_the_contract(store: Backbone) -> None:
    """A later declaration with another schema gets the first one back; a matching one too."""
    first = declared(description="first")
    assert await store.declare_skill(first, 60) == first
    assert await store.declare_skill(declared({"type": "string"}), 60) == first
    assert await store.declare_skill(declared(description="second"), 60) == first
    assert await store.declared_skills() == [first]
    assert await store.declared_skill("ext", "upper") == first
    assert await store.declared_skill("ext", "lower") is None


async def test_a_declaration_lapses_after_its_time(store: Backbone) -> None:
    """A declaration nobody renews is gone after its ttl; then another may take the name."""
    await store.declare_skill(declared(), 0.2)
    async with asyncio.timeout(scaled(5)):
        while await store.declared_skill("ext", "upper") is not None:
            await asyncio.sleep(0.05)
    assert await store.declared_skills() == []
    other = declared(mode=SkillMode.LONG)
    assert await store.declare_skill(other, 60) == other


async def test_remote_work_is_claimed_acked_and_taken_over(store: Backbone) -> None:
    """On a shared backbone a remote skill's queue hands out items, and a lapsed claim again."""
    if not store.shares_remote_work:
        pytest.skip("the memory backbone keeps remote work in its own queue")
    item = WorkItem("tsk_x", "ext", "upper", "alice", [0], [{"text": "a"}])
    await store.mark_serving("p1", ["ext/upper"], 60)
    assert await store.served_anywhere("ext/upper")
    assert not await store.served_anywhere("ext/lower")
    await store.offer_remote("ext/upper", item)
    (claim,) = await store.claim_remote("c1", {"ext/upper": 5}, 0.5)
    assert claim.item == item and claim.queue == "ext/upper"
    async with asyncio.timeout(scaled(5)):  # the lease (0.3 s) lapses: another takes it over
        while not (again := await store.claim_remote("c2", {"ext/upper": 5}, 0.1)):
            pass
    assert again[0].item == item and again[0].deliveries >= 2
    await store.ack_remote(again[0])
    assert isinstance(store, RedisBackbone)
    pending = await store._client.xpending("sw:remote:work:ext/upper", "workers")
    assert pending["pending"] == 0  # acked: never delivered again
    await store.unmark_serving("p1", "ext/upper")
    assert not await store.served_anywhere("ext/upper")
