"""Rate limits, with the ``limits`` library: per client key, and per provider for skills.

One service both edges call: the HTTP middleware counts each request under ``/api/v1``
(``check_request``), the WebSocket its handshake (the same) and each ``call`` op
(``count_op``), so a key's limit means the same on either. Counters live in the backbone's
store in fixed windows: on Redis they are the backbone's (its connections, its keys), shared
by every process; on the memory backbone this process keeps its own. A client over its limit
gets 429; a sub-request over its provider's limit waits instead (``request.queued``) and
never fails for it. When Redis cannot answer a check within ``CHECK_TIMEOUT`` the request is
allowed and the failure logged: a limiter must not take the gateway down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from starlette.datastructures import Headers
from starlette.types import Scope

from skillwire.protocol import RateLimited

from ._config import Config
from ._links import is_openai_path
from ._metrics import Metrics
from .auth import KeyStore, Principal, credentials_of
from .backbone import FixedWindows

__all__ = ["Decision", "RateLimits"]

log = logging.getLogger("skillwire.ratelimit")

API_PREFIX = "/api/v1"  # what the client limits apply to, with the front door (/v1)
# How long a check may wait for the backbone before the request is allowed anyway: the
# socket timeout the limiter's own Redis pool had, so a hung Redis delays no more than it did.
CHECK_TIMEOUT = 1.0


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


class _ProcessWindows:
    """Fixed windows this process alone counts (the memory backbone), in the ``limits``
    library's memory storage: the algorithm of the Redis backbone's ``FIXED_WINDOW`` script."""

    def __init__(self) -> None:
        self._storage = MemoryStorage()

    async def hit(self, name: str, window: float) -> tuple[int, float]:
        hits = await self._storage.incr(name, int(window))
        return hits, max(await self._storage.get_expiry(name) - time.time(), 0.0)


class RateLimits:
    def __init__(
        self,
        config: Config,
        metrics: Metrics | None = None,
        windows: FixedWindows | None = None,
    ) -> None:
        """``windows``: the backbone's shared counters (``Backbone.windows``); None counts in
        this process alone."""
        self._metrics = metrics
        self._windows: FixedWindows = windows if windows is not None else _ProcessWindows()
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
            async with asyncio.timeout(CHECK_TIMEOUT):
                hits, reset_after = await self._windows.hit(
                    item.key_for(*identifiers), item.get_expiry()
                )
        except Exception as exc:  # any storage failure, or no answer in time: fail open, loudly
            log.warning("rate-limit store unavailable, allowing: %r", exc)
            return None
        return Decision(
            allowed=hits <= item.amount,
            limit=item.amount,
            remaining=max(item.amount - hits, 0),
            reset_after=reset_after,
        )
