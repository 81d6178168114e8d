"""Everything one skillwire application holds, built from its config; lives on app.state."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from starlette.requests import HTTPConnection

from skillwire.protocol import ValidationError

from ._config import Config
from ._metrics import Metrics
from ._ratelimit import RateLimits
from .auth import KeyStore, Principal
from .backbone import Backbone, MemoryBackbone
from .engine import (
    App,
    Registry,
    RemotePool,
    RemoteQueue,
    RemoteSkills,
    TaskService,
    WorkerPool,
    demo,
)
from .engine._calls import ChildCalls
from .httpskills import HttpSkills
from .webhooks import UnsafeUrl, UrlGuard, WebhookDispatcher

if TYPE_CHECKING:
    from .llm import LlmBridge

__all__ = ["Runtime", "runtime_of"]

log = logging.getLogger("skillwire")


def make_backbone(config: Config) -> Backbone:
    backbone: Backbone
    if config.backbone == "redis":
        from .backbone.redis import RedisBackbone  # redis-py loads only for this backbone

        backbone = RedisBackbone(
            config.redis_url,
            max_events=config.max_events,
            max_outputs=config.task.max_outputs,
            max_output_bytes=config.task.max_output_bytes,
            retention=config.retention,
            lease=config.work_lease,
        )
    else:
        backbone = MemoryBackbone(
            max_events=config.max_events,
            max_log_bytes=config.max_log_bytes,
            max_outputs=config.task.max_outputs,
            max_output_bytes=config.task.max_output_bytes,
            retention=config.retention,
        )
    # Whichever process finishes a task creates its deliveries: workers need these URLs too.
    backbone.webhook_urls = tuple(config.webhooks.urls)
    return backbone


def make_url_guard(config: Config) -> UrlGuard:
    """The SSRF guard; a configured webhook URL that is not http(s) stops the server."""
    hooks = config.webhooks
    guard = UrlGuard(
        allow_private=hooks.allow_private,
        allow_hosts=hooks.allow_hosts,
        resolve_timeout=hooks.connect_timeout,
    )
    for i, url in enumerate(hooks.urls):
        try:
            guard.parse(url)
        except UnsafeUrl as exc:
            raise ValidationError(
                f"invalid `webhooks.urls[{i}]`: {exc}",
                details={"field": f"webhooks.urls[{i}]", "constraint": str(exc)},
            ) from None
    return guard


def make_llm(
    config: Config, limits: RateLimits | None, metrics: Metrics | None
) -> LlmBridge | None:
    """The LLM bridge when at least one upstream is configured (its app is ``llm``)."""
    if not config.llm.upstreams:
        return None
    from .llm import LlmBridge, LlmMetrics  # the bridge loads only when configured

    return LlmBridge(
        config.llm,
        limits=limits,
        metrics=LlmMetrics(metrics.registry) if metrics is not None else None,
    )


def make_registry(
    config: Config,
    apps: Sequence[App | str],
    llm: LlmBridge | None = None,
    http_skills: HttpSkills | None = None,
) -> Registry:
    sources: list[App | str] = [demo] if config.demo else []
    if llm is not None:
        from .llm import build_app  # as make_llm: only with an upstream configured

        sources.append(build_app(llm))
    sources.extend(apps)
    sources.extend(config.apps)
    if http_skills is None:
        http_skills = HttpSkills(config.http_skills, default_timeout=config.skill_timeout)
    sources.extend(http_skills.apps())
    return Registry.from_sources(
        sources, max_requests=config.max_requests, entry_point_group="skillwire.apps"
    )


def make_workers(
    config: Config,
    backbone: Backbone,
    registry: Registry,
    limits: RateLimits,
    metrics: Metrics,
    remote: RemoteSkills | None = None,
) -> WorkerPool:
    keys: list[KeyStore] = []

    def principal(name: str) -> Principal | None:
        # Built on the first child call: a worker process that never makes one never reads
        # the keys (nor creates a dev key file).
        if not keys:
            keys.append(KeyStore.from_config(config))
        return keys[0].by_name(name)

    calls = ChildCalls(
        backbone,
        registry,
        principals=principal,
        max_parallel=config.max_parallel,
        max_depth=config.max_call_depth,
    )
    return WorkerPool(
        backbone,
        registry,
        limits=limits,
        metrics=metrics,
        requeue_on_stop=backbone.name != "memory",
        max_deliveries=config.work_max_deliveries,
        concurrency=config.concurrency,
        default_timeout=config.skill_timeout,
        timeouts=config.skill_timeouts,
        lease=config.work_lease,
        calls=calls,
        remote=remote,
    )


def make_remote(config: Config, backbone: Backbone, registry: Registry) -> RemoteSkills:
    return RemoteSkills(
        backbone,
        registry,
        max_attempts=config.work_max_deliveries,
        default_timeout=config.skill_timeout,
        timeouts=config.skill_timeouts,
    )


def make_remote_pool(
    config: Config,
    backbone: Backbone,
    registry: Registry,
    limits: RateLimits,
    metrics: Metrics,
    remote: RemoteSkills,
) -> RemotePool | None:
    """On a backbone shared by several processes: the pool that runs remote skills' work
    offered by any process on the workers connected here."""
    if not backbone.shares_remote_work:
        return None
    runner = WorkerPool(
        backbone,
        registry,
        limits=limits,
        metrics=metrics,
        max_deliveries=config.work_max_deliveries,
        concurrency=1_000_000,  # bounded by the workers' slots (RemoteSkills.capacity)
        default_timeout=config.skill_timeout,
        timeouts=config.skill_timeouts,
        lease=config.work_lease,
        remote=remote.local_only(),
        queue=RemoteQueue(backbone),
        fetch=False,
    )
    return RemotePool(backbone, remote, runner)


class Connection(Protocol):
    """An open connection the runtime beats and drains (a WebSocket session)."""

    def heartbeat(self, now: float) -> None:
        """Send a heartbeat if nothing was sent for one interval (``now``: monotonic)."""

    def drain(self) -> None:
        """The server is shutting down: close (WebSocket 1012)."""


@dataclass
class Runtime:
    config: Config
    keys: KeyStore
    registry: Registry
    backbone: Backbone
    tasks: TaskService
    workers: WorkerPool | None
    limits: RateLimits
    metrics: Metrics
    remote: RemoteSkills
    webhooks: WebhookDispatcher | None = None
    llm: LlmBridge | None = None
    remote_pool: RemotePool | None = None
    http_skills: HttpSkills | None = None
    draining: bool = False
    key_announced: bool = False
    open_streams: int = 0
    open_sockets: int = 0
    shutdown: asyncio.Event = field(default_factory=asyncio.Event)
    connections: set[Connection] = field(default_factory=set)
    _beating: asyncio.Task[None] | None = None

    @classmethod
    def build(cls, config: Config, apps: Sequence[App | str]) -> Runtime:
        metrics = Metrics()
        backbone = make_backbone(config)
        limits = RateLimits(config, metrics, backbone.windows)
        llm = make_llm(config, limits, metrics)
        http_skills = HttpSkills(config.http_skills, default_timeout=config.skill_timeout)
        registry = make_registry(config, apps, llm, http_skills)
        guard = make_url_guard(config)
        remote = make_remote(config, backbone, registry)
        tasks = TaskService(
            backbone,
            registry,
            retention=config.retention,
            max_parallel=config.max_parallel,
            metrics=metrics,
            check_webhook_url=guard.check_call,
            remote=remote,
        )
        webhooks = WebhookDispatcher(backbone, config.webhooks, guard, metrics=metrics)
        workers = (
            make_workers(config, backbone, registry, limits, metrics, remote)
            if config.workers
            else None
        )
        return cls(
            config=config,
            keys=KeyStore.from_config(config),
            registry=registry,
            backbone=backbone,
            tasks=tasks,
            workers=workers,
            limits=limits,
            metrics=metrics,
            remote=remote,
            webhooks=webhooks,
            llm=llm,
            remote_pool=make_remote_pool(config, backbone, registry, limits, metrics, remote),
            http_skills=http_skills,
        )

    async def start(self) -> None:
        await self.backbone.start()
        await self.remote.start()
        if self.workers is not None:
            await self.workers.start()
        if self.remote_pool is not None:
            await self.remote_pool.start()
        if self.webhooks is not None:
            await self.webhooks.start()
        if self.keys.generated_key and not self.key_announced:
            log.warning("no API key configured; using the generated dev key")
            self.announce_key()

    def announce_key(self) -> None:
        """Print the generated dev key on stdout (never in a log line), and where it is kept."""
        key, kept_in = self.keys.generated_key, self.keys.generated_key_file
        print(f"API key: {key}", flush=True)
        if kept_in is not None:
            print(f"(a dev key, kept in {kept_in} for the next start too)", flush=True)
        else:
            print("(a dev key for this run only: it could not be saved)", flush=True)
        self.key_announced = True

    def begin_drain(self) -> None:
        """Stop taking new work: streams end, WebSockets close with 1012, new requests 503."""
        self.draining = True
        self.shutdown.set()
        for connection in list(self.connections):
            connection.drain()

    # -- open connections: one heartbeat timer for all of them -------------------------------
    def add_connection(self, connection: Connection) -> None:
        self.connections.add(connection)
        beating = self._beating
        # A timer left from another event loop (an app served again, as tests do) never beats.
        if beating is None or beating.get_loop() is not asyncio.get_running_loop():
            self._beating = asyncio.create_task(self._beat(), name="skillwire-heartbeats")

    def remove_connection(self, connection: Connection) -> None:
        self.connections.discard(connection)

    async def _beat(self) -> None:
        # A quarter of the interval: a heartbeat goes out between 1 and 1.25 intervals after
        # the last frame, for the price of one timer per process instead of one per connection.
        this = asyncio.current_task()
        try:
            while self.connections:
                await asyncio.sleep(self.config.heartbeat_interval / 4)
                now = time.monotonic()
                for connection in list(self.connections):
                    connection.heartbeat(now)
        finally:
            if self._beating is this:  # (a timer replaced by another loop's leaves it be)
                self._beating = None

    async def stop(self) -> None:
        self.begin_drain()
        if self._beating is not None:
            self._beating.cancel()
        if self.workers is not None:
            await self.workers.stop(grace=self.config.shutdown_grace)
        if self.remote_pool is not None:
            await self.remote_pool.stop(grace=self.config.shutdown_grace)
        if self.webhooks is not None:
            await self.webhooks.stop()
        await self.remote.stop()
        if self.http_skills is not None:
            await self.http_skills.close()
        if self.llm is not None:
            await self.llm.aclose()
        await self.backbone.close()


def runtime_of(conn: HTTPConnection) -> Runtime:
    """The runtime of the app serving ``conn`` (``create_app`` keeps it on the app's state)."""
    runtime: Runtime = conn.app.state.skillwire
    return runtime
