"""The configured upstreams, which of them serves a model, and what the bridge shares.

A model is named ``<upstream>/<model>`` when the text before the first ``/`` names a
configured upstream, else as the upstreams list it (``meta-llama/Llama-3.1-8B``), and must
then be served by exactly one of them. An upstream configured with ``models = ["*"]`` serves
what its ``GET /models`` lists, read when first needed and again after a minute.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

from skillwire.protocol import NotFound, ValidationError

from .._config import LlmConfig
from .._ratelimit import RateLimits
from ._metrics import LlmMetrics
from ._upstream import Upstream, UpstreamFailure

__all__ = ["LlmBridge", "Route"]

log = logging.getLogger("skillwire.llm")

MODELS_TTL = 60.0  # seconds a wildcard upstream's model list is trusted
MODELS_RETRY = 5.0  # seconds before asking again an upstream whose list could not be read


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request goes: the upstream and the model as that upstream names it."""

    upstream: Upstream
    model: str

    @property
    def name(self) -> str:
        """The model's id in skillwire: ``<upstream>/<model>``."""
        return f"{self.upstream.name}/{self.model}"


class LlmBridge:
    """The upstreams of ``[llm]``, shared by the ``chat`` skill and the OpenAI routes."""

    def __init__(
        self,
        config: LlmConfig,
        *,
        limits: RateLimits | None = None,
        metrics: LlmMetrics | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.upstreams = {
            name: Upstream(name, upstream, env.get(upstream.api_key_env or "") or None)
            for name, upstream in config.upstreams.items()
        }
        self.limits = limits
        self.metrics = metrics
        self._listed: dict[str, tuple[float, frozenset[str]]] = {}
        self._listing: dict[str, asyncio.Future[frozenset[str]]] = {}

    async def aclose(self) -> None:
        for upstream in self.upstreams.values():
            await upstream.aclose()

    # -- models --------------------------------------------------------------------------
    async def _wildcard_models(self, upstream: Upstream) -> frozenset[str]:
        """What a ``["*"]`` upstream lists now (empty when it cannot be asked)."""
        cached = self._listed.get(upstream.name)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        listing = self._listing.get(upstream.name)
        if listing is None or listing.get_loop() is not asyncio.get_running_loop():
            # One request at a time per upstream; a caller that gives up (cancelled) leaves it
            # running for the others.
            listing = asyncio.ensure_future(self._list(upstream))
            self._listing[upstream.name] = listing
            listing.add_done_callback(lambda _: self._listing.pop(upstream.name, None))
        return await asyncio.shield(listing)

    async def _list(self, upstream: Upstream) -> frozenset[str]:
        cached = self._listed.get(upstream.name)
        try:
            models = frozenset(await upstream.list_models())
            self._listed[upstream.name] = (time.monotonic() + MODELS_TTL, models)
        except UpstreamFailure as exc:
            log.warning("cannot list the models of upstream %s: %s", upstream.name, exc.message)
            models = cached[1] if cached is not None else frozenset()
            self._listed[upstream.name] = (time.monotonic() + MODELS_RETRY, models)
        return models

    async def _serves(self, upstream: Upstream, model: str) -> bool:
        if upstream.wildcard:
            return model in await self._wildcard_models(upstream)
        return model in upstream.config.models

    async def models(self) -> list[Route]:
        """Every model of every upstream, in configuration order."""
        routes: list[Route] = []
        for upstream in self.upstreams.values():
            names = (
                sorted(await self._wildcard_models(upstream))
                if upstream.wildcard
                else upstream.config.models
            )
            routes.extend(Route(upstream, name) for name in names)
        return routes

    async def resolve(self, model: str) -> Route:
        """The route of a requested model; NotFound or (ambiguous) ValidationError."""
        prefix, slash, rest = model.partition("/")
        if slash and prefix in self.upstreams:
            upstream = self.upstreams[prefix]
            if rest and await self._serves(upstream, rest):
                return Route(upstream, rest)
            raise _unknown(model, f"upstream {prefix!r} does not serve {rest!r}")
        serving = [u for u in self.upstreams.values() if await self._serves(u, model)]
        if len(serving) == 1:
            return Route(serving[0], model)
        if not serving:
            raise _unknown(model, "no configured upstream serves it")
        names = ", ".join(f"{u.name}/{model}" for u in serving)
        raise ValidationError(
            f"model {model!r} is served by several upstreams: name one ({names})",
            details={"field": "model", "constraint": f"one of {names}"},
        )


def _unknown(model: str, why: str) -> NotFound:
    return NotFound(f"model {model!r} not found: {why}", details={"field": "model", "model": model})
