"""Small shared state on Redis: the id secret every process signs task ids with, and the
one-use tickets a browser trades for a WebSocket (each a string key with an expiry)."""

from __future__ import annotations

import secrets
from typing import Any

from . import _keys as keys
from ._errors import translated

__all__ = ["RedisTokens"]


class RedisTokens:
    """The id secret (read once, then kept) and the WebSocket tickets."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._secret: bytes | None = None

    async def id_secret(self) -> bytes:
        if self._secret is None:
            async with translated():
                await self._client.set(keys.SECRET, secrets.token_hex(32), nx=True)
                value = await self._client.get(keys.SECRET)
            self._secret = bytes.fromhex(value.decode())
        return self._secret

    async def restore_secret(self) -> None:
        """Redis lost its data (see ``RedisWork.recreate_group``)."""
        if self._secret is not None:
            # The id secret went too: put back the one this process (and every process that
            # ran before the loss) signs with, so they keep agreeing on old and new ids.
            async with translated():
                await self._client.set(keys.SECRET, self._secret.hex(), nx=True)

    async def put_ticket(self, ticket: str, principal: str, ttl: float) -> None:
        async with translated():
            await self._client.set(keys.ticket(ticket), principal, px=max(int(ttl * 1000), 1))

    async def take_ticket(self, ticket: str) -> str | None:
        async with translated():
            value = await self._client.getdel(keys.ticket(ticket))
        return value.decode() if value is not None else None
