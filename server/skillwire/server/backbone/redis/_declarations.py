"""Remote workers' skill declarations on Redis: a key each (its expiry the declaration's
lease) and a sorted set of their names scored by when each lapses, pruned on every read."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from skillwire.protocol import SkillDeclaration

from . import _keys as keys
from ._errors import translated

__all__ = ["RedisDeclarations"]


class RedisDeclarations:
    """The skills remote workers declare: the first contract kept, renewed while declared."""

    def __init__(self, client: Any) -> None:
        self._client = client

    async def declare(self, declaration: SkillDeclaration, ttl: float) -> SkillDeclaration:
        ms = max(int(ttl * 1000), 1)
        key = keys.declaration(declaration.key)
        async with translated():
            while True:
                if await self._client.set(key, msgspec.json.encode(declaration), nx=True, px=ms):
                    kept = declaration
                    break
                raw = await self._client.get(key)
                if raw is None:  # it lapsed between the two commands: declare again
                    continue
                kept = msgspec.json.decode(raw, type=SkillDeclaration)
                if not kept.same_contract(declaration):
                    return kept
                await self._client.pexpire(key, ms)
                break
            until = int(time.time() * 1000) + ms
            await self._client.zadd(keys.DECLARATIONS, {declaration.key: until}, gt=True)
        return kept

    async def all(self) -> list[SkillDeclaration]:
        now = int(time.time() * 1000)
        async with translated():
            await self._client.zremrangebyscore(keys.DECLARATIONS, "-inf", now)
            names = await self._client.zrange(keys.DECLARATIONS, 0, -1)
            if not names:
                return []
            raws = await self._client.mget([keys.declaration(n.decode()) for n in names])
        found = [msgspec.json.decode(raw, type=SkillDeclaration) for raw in raws if raw]
        return sorted(found, key=lambda d: d.key)

    async def get(self, app: str, skill: str) -> SkillDeclaration | None:
        async with translated():
            raw = await self._client.get(keys.declaration(f"{app}/{skill}"))
        return msgspec.json.decode(raw, type=SkillDeclaration) if raw else None
