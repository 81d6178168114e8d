"""Task operations shared by every channel: call, get, wait, list and cancel.

Who may call what, and the metrics and audit line of each call and cancel, live here once,
so that no channel (REST, a stream, a WebSocket op) can forget one. Visibility and retention
too: a task is shown only to its owner and admins
(404 to anyone else), and an id past the retention window answers 410, told apart from an
id never issued (404) by the time and signature the id carries.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from skillwire.protocol import (
    AppSkills,
    AppsList,
    BackboneUnavailable,
    CallBody,
    Conflict,
    Expired,
    Forbidden,
    NotFound,
    Task,
    TaskStatus,
    ValidationError,
    encode,
    format_time,
    lifecycle,
    new_task_id,
    task_id_time,
    validate,
)

from .._logging import audit
from .._metrics import Metrics
from ..auth import Permission, Principal
from ..backbone import Backbone, Idempotency, StoredTask, WorkItem
from ._app import SkillSpec
from ._registry import Registry
from ._sessions import SessionService

if TYPE_CHECKING:
    from ._remote import RemoteSkills

__all__ = ["CallResult", "TaskService"]


class CallResult:
    __slots__ = ("replayed", "task")

    def __init__(self, task: Task, *, replayed: bool) -> None:
        self.task = task
        self.replayed = replayed


def _chains(indices: list[int], inputs: list[Any], width: int) -> list[tuple[list[int], list[Any]]]:
    """Split requests round-robin into ``width`` chains (at most ``width`` run at once)."""
    return [(indices[i::width], inputs[i::width]) for i in range(min(width, len(indices)))]


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class TaskService:
    def __init__(
        self,
        backbone: Backbone,
        registry: Registry,
        *,
        retention: float,
        max_parallel: int,
        metrics: Metrics,
        check_webhook_url: Callable[[str], Awaitable[None]] | None = None,
        remote: RemoteSkills | None = None,
    ) -> None:
        self.remote = remote
        self.backbone = backbone
        self.registry = registry
        self.retention = retention
        self.max_parallel = max_parallel
        self.metrics = metrics
        # The SSRF guard: raises ValidationError (422 naming webhook_url) for a refused URL.
        self.check_webhook_url = check_webhook_url
        self.sessions = SessionService(backbone, retention=retention)

    # -- calls ---------------------------------------------------------------------------
    async def skill(self, app: str, skill: str) -> SkillSpec:
        """An in-process skill, else one a remote worker declared; NotFound otherwise."""
        try:
            return self.registry.get(app, skill)
        except NotFound:
            spec = await self.remote.find(app, skill) if self.remote is not None else None
            if spec is None:
                raise
            return spec

    async def apps(self) -> AppsList:
        """Every skill: in-process ones, then remote ones (``"remote": true``), by app."""
        listing = self.registry.describe()
        if self.remote is None:
            return listing
        by_app = {item.app: item for item in listing.items}
        for skill in await self.remote.describe(self.registry.default_max_requests):
            if skill.app not in by_app:
                by_app[skill.app] = AppSkills(app=skill.app, skills=[])
                listing.items.append(by_app[skill.app])
            by_app[skill.app].skills.append(skill)
        return listing

    async def callable_skill(self, principal: Principal, app: str, skill: str) -> SkillSpec:
        """The skill, if ``principal`` may call it: 403 without the call permission or out
        of the key's scopes, 404 for a skill that does not exist (in-process nor declared)."""
        principal.require(Permission.CALL)
        spec = await self.skill(app, skill)
        if not principal.may_call(app, skill):
            raise Forbidden(
                f"this key may not call {app}/{skill}", details={"skill": f"{app}.{skill}"}
            )
        return spec

    def validate_requests(self, spec: SkillSpec, requests: list[dict[str, Any]]) -> list[Any]:
        """Check each request against the skill's input schema (422 naming the item)."""
        limit = self.registry.max_requests(spec)
        if len(requests) > limit:
            raise ValidationError(
                f"too many requests: {len(requests)} (at most {limit})",
                details={"field": "requests", "constraint": f"at most {limit} items"},
            )
        for i, request in enumerate(requests):
            if spec.check is not None:
                spec.check(request, f"requests[{i}]")
            else:
                validate(request, spec.input_type, prefix=f"requests[{i}]")
        return list(requests)

    async def call(
        self,
        principal: Principal,
        spec: SkillSpec,
        body: CallBody,
        *,
        channel: str,
        idempotency_key: str | None = None,
        audit_fields: Mapping[str, Any] | None = None,
    ) -> CallResult:
        """Create a task (or find the one an idempotency key already made); ``channel``
        (rest, sse, ndjson, ws, openai...) labels its metric and audit line, which
        ``audit_fields`` completes (the front door's model)."""
        inputs = self.validate_requests(spec, body.requests)
        if body.webhook_url is not None and self.check_webhook_url is not None:
            await self.check_webhook_url(body.webhook_url)
        if body.session_id is not None:
            await self.sessions.check_joinable(principal, body.session_id)
        secret = await self.backbone.id_secret()
        now = time.time()
        task_id = new_task_id(secret, now)
        task, first = lifecycle.new_task(
            task_id, spec.app, spec.name, len(inputs), body.metadata, format_time(now)
        )
        task.session_id = body.session_id
        work = [
            WorkItem(task_id, spec.app, spec.name, principal.name, indices, chain_inputs)
            for indices, chain_inputs in _chains(
                list(range(len(inputs))), inputs, self.max_parallel
            )
        ]
        idempotency = None
        if idempotency_key is not None:
            fingerprint = hashlib.sha256(
                encode(
                    [
                        spec.app,
                        spec.name,
                        body.requests,
                        body.webhook_url,
                        body.metadata,
                        # in a session, the session too (the same key in another is a 409)
                        *([body.session_id] if body.session_id is not None else []),
                    ]
                )
            ).hexdigest()
            idempotency = Idempotency(
                f"{principal.name}:{idempotency_key}", fingerprint, self.retention
            )
        # The key is taken with the task, atomically: a creation that fails (a 503) leaves no
        # key behind, so the client's retry with the same key creates the task, once.
        earlier = await self.backbone.create_task(
            task,
            first,
            owner=principal.name,
            webhook_url=body.webhook_url,
            work=work,
            idempotency=idempotency,
        )
        if earlier is not None and idempotency is not None:
            return await self._replay(principal, earlier, idempotency.fingerprint)
        self.metrics.calls.labels(spec.app, spec.name, channel).inc()
        audit(
            "call",
            principal.name,
            task_id=task_id,
            app=spec.app,
            skill=spec.name,
            requests=len(inputs),
            channel=channel,
            **(audit_fields or {}),
        )
        return CallResult(lifecycle.task_view(task), replayed=False)

    async def _replay(
        self, principal: Principal, earlier: tuple[str, str], fingerprint: str
    ) -> CallResult:
        task_id, earlier_fingerprint = earlier
        if earlier_fingerprint != fingerprint:
            raise Conflict(
                "this Idempotency-Key was used with another request body",
                details={"task_id": task_id},
            )
        # Stored with its key in one step: a key names a task that exists (until retention).
        stored = await self.backbone.get_task(task_id)
        return CallResult(self._visible(principal, task_id, stored).task, replayed=True)

    # -- reading -------------------------------------------------------------------------
    async def _absent(self, task_id: str) -> NotFound | Expired:
        created = task_id_time(await self.backbone.id_secret(), task_id)
        if created is not None and created + self.retention < time.time():
            return Expired(
                f"task {task_id} is past the retention window", details={"task_id": task_id}
            )
        return NotFound(f"task {task_id} not found", details={"task_id": task_id})

    def _visible(self, principal: Principal, task_id: str, stored: StoredTask | None) -> StoredTask:
        if stored is None or not principal.may_see(stored.owner):
            raise NotFound(f"task {task_id} not found", details={"task_id": task_id})
        return stored

    async def get(self, principal: Principal, task_id: str) -> StoredTask:
        stored = await self.backbone.get_task(task_id)
        if stored is None:
            raise await self._absent(task_id)
        return self._visible(principal, task_id, stored)

    async def wait(
        self, principal: Principal, task_id: str, timeout: float, *, created: Task | None = None
    ) -> Task:
        """The task once it is finished, or as it is after ``timeout`` seconds.

        ``created``: the task as ``call`` just created it for this principal (its first read
        is skipped: the principal may see it, and it is read again once listened to)."""
        if created is None:
            stored = await self.get(principal, task_id)
            if timeout <= 0 or stored.task.status in lifecycle.TERMINAL_TASK_STATUSES:
                return stored.task
        elif timeout <= 0:
            return created
        loop = asyncio.get_running_loop()
        finished = loop.create_future()

        def on_event(event: Any) -> None:
            if event.terminal:
                _settle(finished)

        try:
            undo = await self.backbone.listen(task_id, on_event)
        except BackboneUnavailable:
            # Live events are out (pub/sub reconnecting) but the store answers: poll it, so a
            # call whose task was already created never answers 503 for its wait.
            return await self._poll(principal, task_id, timeout)
        try:
            stored = await self.get(principal, task_id)
            if stored.task.status not in lifecycle.TERMINAL_TASK_STATUSES:
                # A timer that ends the wait, cheaper than a timeout scope around it.
                timer = loop.call_later(timeout, _settle, finished)
                try:
                    await finished
                finally:
                    timer.cancel()
                stored = await self.get(principal, task_id)
        finally:
            undo()
        return stored.task

    async def _poll(self, principal: Principal, task_id: str, timeout: float) -> Task:
        deadline = time.monotonic() + timeout
        while True:
            stored = await self.get(principal, task_id)
            if stored.task.status in lifecycle.TERMINAL_TASK_STATUSES:
                return stored.task
            if time.monotonic() >= deadline:
                return stored.task
            await asyncio.sleep(min(0.2, max(deadline - time.monotonic(), 0.0)))

    async def list(
        self,
        principal: Principal,
        *,
        status: TaskStatus | None,
        app: str | None,
        skill: str | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Task], int]:
        return await self.backbone.list_tasks(
            owner=None if principal.is_admin else principal.name,
            status=status,
            app=app,
            skill=skill,
            limit=limit,
            offset=offset,
        )

    async def cancel(self, principal: Principal, task_id: str, *, channel: str) -> Task:
        """Cancel a task the principal may see; ``channel`` labels its audit line."""
        await self.get(principal, task_id)
        task = await self.backbone.cancel(task_id)
        self.metrics.tasks_finished.labels(task.app, task.skill, "cancelled").inc()
        audit("cancel", principal.name, task_id=task_id, channel=channel)
        return task
