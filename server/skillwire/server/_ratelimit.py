"""Rate limits, with the ``limits`` library: per client key, and per provider for skills.

One service both edges call: the HTTP middleware counts each request under ``/api/v1``
(``check_request``), the WebSocket its handshake (the same) and each ``call`` op
(``count_op``), so a key's limit means the same on either. Counters live in the backbone's
store (memory, or Redis shared by every process), in fixed windows. A client over its limit
gets 429; a sub-request over its provider's limit waits instead (``request.queued``) and
never fails for it. When Redis cannot answer a check the
request is allowed and the failure logged: a limiter must not take the gateway down.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from starlette.datastructures import Headers
from starlette.types import Scope

from skillwire.protocol import RateLimited

from ._config import Config
from ._links import is_openai_path
from ._metrics import Metrics
from .auth import KeyStore, Principal, credentials_of
from .backbone.redis._connections import pool_options

__all__ = ["Decision", "RateLimits"]

log = logging.getLogger("skillwire.ratelimit")

API_PREFIX = "/api/v1"  # what the client limits apply to, with the front door (/v1)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: float  # seconds until the window resets

    @property
    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(max(int(self.reset_after + 0.999), 0)),
        }

    @property
    def retry_after(self) -> int:
        """Whole seconds until the window resets, at least 1 (``Retry-After``)."""
        return max(int(self.reset_after + 0.999), 1)

    def refusal(self) -> RateLimited:
        """The error for a request or op over this limit."""
        return RateLimited(
            f"rate limit of {self.limit} exceeded; retry in {self.retry_after} s",
            details={"limit": self.limit, "retry_after": self.retry_after},
        )


def parse_limit(text: str | None) -> RateLimitItem | None:
    """``"600/minute"`` -> a limit item; ``"0"``, ``""`` or None -> no limit."""
    if text is None or text.strip() in ("", "0"):
        return None
    return parse(text)


class RateLimits:
    def __init__(self, config: Config, metrics: Metrics | None = None) -> None:
        storage: Storage
        self._metrics = metrics
        self._pool: aioredis.ConnectionPool | None = None
        if config.backbone == "redis":
            # Our own pool, so that close() can release its connections.
            self._pool = aioredis.ConnectionPool.from_url(
                config.redis_url, socket_timeout=1, socket_connect_timeout=1, **pool_options()
            )
            storage = RedisStorage(
                "async+" + config.redis_url,
                implementation="redispy",
                connection_pool=self._pool,  # type: ignore[arg-type]  # passed through to redis-py
            )
        else:
            storage = MemoryStorage()
        self._limiter = FixedWindowRateLimiter(storage)
        self._default = parse_limit(config.rate_limit)
        self._roles = {role: parse_limit(text) for role, text in config.role_rate_limits.items()}
        self._providers = {key: parse_limit(text) for key, text in config.provider_limits.items()}
        self._parsed: dict[str, RateLimitItem | None] = {}
        # No client limit anywhere (default, roles, keys): requests need no limiter at all.
        self.clients_unlimited = (
            self._default is None
            and not any(self._roles.values())
            and not any(parse_limit(key.rate_limit) for key in config.keys)
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()

    def client_limit(self, key_limit: str | None, role: str | None) -> RateLimitItem | None:
        """A key's own limit, else its role's, else the default."""
        if key_limit is not None:
            if key_limit not in self._parsed:
                self._parsed[key_limit] = parse_limit(key_limit)
            return self._parsed[key_limit]
        if role is not None and role in self._roles:
            return self._roles[role]
        return self._default

    @staticmethod
    def applies_to(scope: Scope) -> bool:
        """The client limits cover the API and the OpenAI-compatible front door."""
        path: str = scope["path"]
        return path.startswith(API_PREFIX) or is_openai_path(scope)

    async def check_request(self, scope: Scope, keys: KeyStore) -> Decision | None:
        """Count a request (or a WebSocket handshake) under ``/api/v1`` against its client's
        limit: its key's when it presents a valid one, else its IP's, so that floods of bad
        keys are limited too. It runs before authentication. None: no limit applies, or
        the store could not answer (the request is allowed)."""
        if self.clients_unlimited or not self.applies_to(scope):
            return None
        key = credentials_of(Headers(scope=scope))
        principal = keys.lookup(key) if key else None
        client = scope.get("client")
        return await self._count_client(principal, client[0] if client else "unknown")

    async def count_op(self, principal: Principal) -> None:
        """Count a WebSocket ``call`` op against its key's limit, as a request is counted
        (API.md: without it one socket could call as often as it liked); RateLimited past
        the limit."""
        if self.clients_unlimited:
            return
        decision = await self._count_client(principal, None)
        if decision is not None and not decision.allowed:
            raise decision.refusal()

    async def _count_client(self, principal: Principal | None, ip: str | None) -> Decision | None:
        if principal is not None:
            item = self.client_limit(principal.rate_limit, principal.role)
            identity = ("key", principal.name)
        else:
            item = self.client_limit(None, None)
            identity = ("ip", ip or "unknown")
        if item is None:
            return None
        decision = await self.hit(item, *identity)
        if decision is not None and not decision.allowed and self._metrics is not None:
            self._metrics.rate_limited.labels("client").inc()
        return decision

    def provider_limit(
        self, provider: str, skill: str, model: str | None
    ) -> tuple[str, RateLimitItem] | None:
        """The most specific of ``provider.skill.model`` and ``provider.skill`` configured."""
        candidates = [f"{provider}.{skill}.{model}"] if model else []
        candidates.append(f"{provider}.{skill}")
        for key in candidates:
            item = self._providers.get(key)
            if item is not None:
                return key, item
        return None

    async def hit(self, item: RateLimitItem, *identifiers: str) -> Decision | None:
        """Count one hit; None when the store could not answer (the caller allows)."""
        try:
            allowed = await self._limiter.hit(item, *identifiers)
            stats = await self._limiter.get_window_stats(item, *identifiers)
        except Exception as exc:  # any storage failure: fail open, loudly
            log.warning("rate-limit store unavailable, allowing: %s", exc)
            return None
        return Decision(
            allowed=allowed,
            limit=item.amount,
            remaining=stats.remaining,
            reset_after=max(stats.reset_time - time.time(), 0.0),
        )
