"""Task trees: a skill calling another skill (``ctx.call``).

A child task has the caller's principal and session and ``parent_task_id`` set; the parent's
log gets ``request.call`` (and its Task lists the child in ``children``) before the child
exists. The child is an ordinary task: queued like any call, run by any worker process,
followed on any channel. The call is checked against the principal's permissions and scopes
(a skill cannot reach what its caller may not) and does not count toward the client rate
limit. The depth of a tree is limited (``max_call_depth``, default 8).

Cancelling a parent cancels its children on every process: the skill awaiting a child is
interrupted where it runs (its task's cancel signal), and that cancels the child in the
backbone, whose own signal reaches the process running it, and so on down the tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Generator
from typing import TYPE_CHECKING, Any

from skillwire.protocol import (
    Conflict,
    EncodedEvent,
    ErrorCode,
    Event,
    NotFound,
    SkillError,
    SkillwireError,
    Task,
    decode_event,
    format_time,
    lifecycle,
    new_task_id,
    to_builtins,
    validate,
)

from ..auth import Permission, Principal
from ..backbone import Backbone, WorkItem

if TYPE_CHECKING:
    from ._context import Context
    from ._registry import Registry

__all__ = ["DEFAULT_MAX_CALL_DEPTH", "ChildCall", "ChildCalls"]

DEFAULT_MAX_CALL_DEPTH = 8
PAGE = 500


class ChildCalls:
    """Creates child tasks for the skills this process runs."""

    def __init__(
        self,
        backbone: Backbone,
        registry: Registry,
        *,
        principals: Callable[[str], Principal | None],
        max_parallel: int,
        max_depth: int = DEFAULT_MAX_CALL_DEPTH,
    ) -> None:
        self.backbone = backbone
        self.registry = registry
        self.principals = principals
        self.max_parallel = max_parallel
        self.max_depth = max_depth

    def _check(self, principal_name: str, app: str, skill: str) -> None:
        principal = self.principals(principal_name)
        if principal is None or not principal.has(Permission.CALL):
            raise SkillError(
                f"the caller may not call skills ({principal_name!r} lacks `call`)",
                code=ErrorCode.FORBIDDEN,
                details={"permission": "call"},
            )
        if not principal.may_call(app, skill):
            raise SkillError(
                f"the caller's key may not call {app}/{skill}",
                code=ErrorCode.FORBIDDEN,
                details={"skill": f"{app}.{skill}"},
            )

    async def _depth(self, task_id: str) -> tuple[int, Task]:
        """How deep ``task_id`` sits in its tree (a root is 1), and its Task."""
        stored = await self.backbone.get_task(task_id)
        if stored is None:
            raise SkillError(f"task {task_id} is gone", code=ErrorCode.NOT_FOUND)
        task, depth = stored.task, 1
        parent = task.parent_task_id
        while parent is not None and depth <= self.max_depth:
            above = await self.backbone.get_task(parent)
            if above is None:
                break
            depth += 1
            parent = above.task.parent_task_id
        return depth, task

    async def create(
        self,
        ctx: Context,
        app: str,
        skill: str,
        requests: list[Any],
        metadata: dict[str, Any] | None,
    ) -> Task:
        """The child task, created and queued; raises SkillError when it may not be."""
        self._check(ctx.principal, app, skill)
        try:
            spec = self.registry.get(app, skill)
        except NotFound as exc:
            raise SkillError(exc.message, code=ErrorCode.NOT_FOUND) from None
        built = [to_builtins(r) for r in requests]
        limit = self.registry.max_requests(spec)
        if not 1 <= len(built) <= limit:
            raise SkillError(
                f"a call takes 1 to {limit} requests, not {len(built)}",
                code=ErrorCode.VALIDATION_ERROR,
                details={"field": "requests"},
            )
        try:
            for i, request in enumerate(built):
                validate(request, spec.input_type, prefix=f"requests[{i}]")
        except SkillwireError as exc:
            raise SkillError(exc.message, code=exc.code, details=exc.details) from None
        depth, parent = await self._depth(ctx.task_id)
        if depth >= self.max_depth:
            raise SkillError(
                f"calls nest at most {self.max_depth} deep; {app}/{skill} would be deeper",
                code=ErrorCode.VALIDATION_ERROR,
                details={"max_depth": self.max_depth},
            )
        now = time.time()
        task_id = new_task_id(await self.backbone.id_secret(), now)
        task, first = lifecycle.new_task(
            task_id, app, skill, len(built), dict(metadata or {}), format_time(now)
        )
        task.session_id = parent.session_id
        task.parent_task_id = ctx.task_id
        # The parent's log names the child before the child exists: a reader of the parent
        # never meets a child it cannot find, and a cancelled parent creates none.
        await ctx.record_call({"task_id": task_id, "app": app, "skill": skill})
        await ctx.flush()
        width = self.max_parallel
        indices = list(range(len(built)))
        work = [
            WorkItem(task_id, app, skill, ctx.principal, indices[i::width], built[i::width])
            for i in range(min(width, len(built)))
        ]
        try:
            await self.backbone.create_task(
                task, first, owner=ctx.principal, webhook_url=None, work=work
            )
        except Conflict as exc:  # its session was closed meanwhile
            raise SkillError(exc.message, code=ErrorCode.CONFLICT, details=exc.details) from None
        return lifecycle.task_view(task)


class ChildCall:
    """``ctx.call(...)``: await it for the child's final Task, or iterate the child's events
    (``async for event in ctx.call(...)``, ending with the terminal one). Leaving early, or
    being cancelled while waiting, cancels the child."""

    def __init__(
        self,
        calls: ChildCalls,
        ctx: Context,
        app: str,
        skill: str,
        requests: list[Any],
        metadata: dict[str, Any] | None,
    ) -> None:
        self._calls = calls
        self._ctx = ctx
        self._args = (app, skill, requests, metadata)
        self.task_id: str | None = None

    def __await__(self) -> Generator[Any, None, Task]:
        return self._final().__await__()

    async def _final(self) -> Task:
        last: Task | None = None
        async for event in self:
            if event.type in _TERMINAL:
                last = validate(event.data, Task, strict=False)
        assert last is not None
        return last

    async def __aiter__(self) -> AsyncIterator[Event]:
        backbone = self._calls.backbone
        child = await self._calls.create(self._ctx, *self._args)
        self.task_id = child.task_id
        queue: asyncio.Queue[EncodedEvent] = asyncio.Queue()
        finished = False
        try:
            undo = await backbone.listen(child.task_id, queue.put_nowait)
            try:
                seen = 0
                while True:
                    page = await backbone.read_events(child.task_id, seen, PAGE)
                    if page is None:
                        raise SkillError(f"task {child.task_id} is gone", code=ErrorCode.NOT_FOUND)
                    for encoded in page.events:
                        if encoded.seq <= seen:
                            continue
                        seen = encoded.seq
                        yield decode_event(encoded.json)
                        if encoded.terminal:
                            finished = True
                            return
                    if page.events:
                        continue
                    encoded = await queue.get()  # something new: read the log from ``seen``
                    while not queue.empty():
                        queue.get_nowait()
            finally:
                undo()
        finally:
            if not finished:
                # The caller left early or was cancelled (its own task was): the child stops.
                with contextlib.suppress(Conflict, NotFound, SkillwireError):
                    await asyncio.shield(backbone.cancel(child.task_id))


_TERMINAL = frozenset(lifecycle.TASK_TERMINAL_EVENTS.values())
