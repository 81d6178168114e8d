"""``AsyncClient``: skillwire's API v1 from asyncio."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

from skillwire.protocol import (
    AppSkills,
    AppsList,
    CallBody,
    CallOp,
    Event,
    EventType,
    Skill,
    Task,
    TaskList,
    TaskStatus,
    lifecycle,
)

from ._backoff import Backoff
from ._errors import TransportError, TransportUnavailable
from ._events import is_terminal, task_path
from ._follow import Follower
from ._http import HttpTransport, decode
from ._outputs import TaskOutputs, TextCursor
from ._settings import DEFAULT_TRANSPORTS, Settings, StreamTransport, TransportName
from ._ws import WebSocketSession

__all__ = ["AsyncClient"]

Requests = Sequence[Mapping[str, Any]]
_REQUEST_ENDS = frozenset({EventType.REQUEST_COMPLETED, EventType.REQUEST_FAILED})


def _slug(value: str) -> str:
    return quote(value, safe="")


class AsyncClient:
    """An asyncio client for one skillwire server.

    ``timeout`` bounds each REST request (a ``wait`` is added to its read timeout);
    ``retries`` is how many times a failed request is sent again when that is safe;
    ``backoff`` spaces those retries and stream reconnects; ``heartbeat_interval`` is the
    server's (a stream silent for three of them is treated as dropped); ``transports`` is
    the order ``transport="auto"`` tries; ``ws_url`` overrides the WebSocket endpoint.

    Use it as an async context manager, or call ``aclose()``.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 2,
        backoff: Backoff | None = None,
        heartbeat_interval: float = 15.0,
        max_reconnects: int = 10,
        poll_wait: float = 30.0,
        transports: Sequence[StreamTransport] = DEFAULT_TRANSPORTS,
        ws_url: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        unknown = set(transports) - set(DEFAULT_TRANSPORTS)
        if unknown or not transports:
            raise ValueError(f"transports must be a non-empty subset of {DEFAULT_TRANSPORTS}")
        self.settings = Settings(
            base_url=base_url.rstrip("/"),
            api_key=api_key,
            timeout=timeout,
            retries=max(retries, 0),
            backoff=backoff or Backoff(),
            heartbeat_interval=heartbeat_interval,
            poll_wait=poll_wait,
            max_reconnects=max(max_reconnects, 0),
            transports=tuple(transports),
            ws_url=ws_url,
            headers=dict(headers or {}),
        )
        self._http = HttpTransport(self.settings)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- skills --------------------------------------------------------------------------
    async def apps(self) -> list[AppSkills]:
        """Every app with its skills (``GET /api/v1/apps``)."""
        return (await self._http.get(AppsList, "/api/v1/apps")).items

    async def skill(self, app: str, skill: str) -> Skill:
        """One skill's description and input schema."""
        return await self._http.get(Skill, f"/api/v1/apps/{_slug(app)}/{_slug(skill)}")

    async def call(
        self,
        app: str,
        skill: str,
        requests: Requests,
        *,
        wait: float | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Task:
        """Call a skill with ``requests`` (one sub-request each); returns the Task.

        ``wait=None`` leaves it to the server (quick skills wait up to its quick wait);
        ``wait=0`` returns at once (``Prefer: respond-async``); ``wait=N`` waits up to N
        seconds for the task to finish. When ``retries`` is on and no ``idempotency_key`` is
        given, one is generated, so that a retried POST never starts the work twice.
        """
        body = CallBody(
            requests=[dict(r) for r in requests],
            webhook_url=webhook_url,
            metadata=dict(metadata or {}),
        )
        headers: dict[str, str] = {}
        if wait is not None:
            if wait < 0:
                raise ValueError("wait must be >= 0")
            headers["Prefer"] = "respond-async" if wait == 0 else f"wait={wait:g}"
        key = idempotency_key
        if key is None and self.settings.retries:
            key = "swc_" + secrets.token_urlsafe(18)
        if key is not None:
            headers["Idempotency-Key"] = key
        started = time.monotonic()
        response = await self._http.request(
            "POST",
            f"/api/v1/apps/{_slug(app)}/{_slug(skill)}",
            json=body,
            headers=headers,
            extra_read=wait if wait is not None else 0.0,
        )
        task = decode(Task, response.content)
        # A retried POST is answered like a GET of the task, whatever its Prefer header:
        # wait out the rest here.
        remaining = (wait or 0.0) - (time.monotonic() - started)
        if remaining > 0.05 and task.status not in lifecycle.TERMINAL_TASK_STATUSES:
            task = await self.task(task.task_id, wait=remaining)
        return task

    # -- tasks ---------------------------------------------------------------------------
    async def task(self, task_id: str, wait: float | None = None) -> Task:
        """A task by id; ``wait=N`` long-polls up to N seconds for it to finish."""
        if wait:
            return await self._http.get(
                Task, task_path(task_id), params={"wait": f"{wait:g}"}, extra_read=wait
            )
        return await self._http.get(Task, task_path(task_id))

    async def tasks(
        self,
        *,
        status: TaskStatus | str | None = None,
        app: str | None = None,
        skill: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> TaskList:
        """One page of the caller's tasks, newest first."""
        params: dict[str, str | int] = {"limit": limit, "offset": offset}
        for name, value in (("status", status), ("app", app), ("skill", skill)):
            if value is not None:
                params[name] = str(value)
        return await self._http.get(TaskList, "/api/v1/tasks", params=params)

    async def iter_tasks(
        self,
        *,
        status: TaskStatus | str | None = None,
        app: str | None = None,
        skill: str | None = None,
        page_size: int = 100,
    ) -> AsyncGenerator[Task, None]:
        """Every task of ``tasks()``, page after page (each task once, even if new ones
        arrive meanwhile and shift the pages)."""
        seen: set[str] = set()
        offset = 0
        while True:
            page = await self.tasks(
                status=status, app=app, skill=skill, limit=page_size, offset=offset
            )
            for task in page.items:
                if task.task_id not in seen:
                    seen.add(task.task_id)
                    yield task
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return

    async def cancel(self, task_id: str) -> Task:
        """Cancel a task; returns it ``cancelled``. A finished task raises ``Conflict``."""
        response = await self._http.request("DELETE", task_path(task_id))
        return decode(Task, response.content)

    # -- events --------------------------------------------------------------------------
    def _order(self, transport: TransportName) -> tuple[StreamTransport, ...]:
        if transport == "auto":
            return self.settings.transports
        if transport not in DEFAULT_TRANSPORTS:
            raise ValueError(f"transport must be 'auto' or one of {DEFAULT_TRANSPORTS}")
        return (transport,)

    def events(
        self,
        task_id: str,
        *,
        after: int = 0,
        transport: TransportName = "auto",
        snapshot: bool = False,
    ) -> AsyncGenerator[Event, None]:
        """The task's events with ``seq > after``, each once and in order, until the
        terminal one; reconnects and resumes on its own (see ``Follower``).

        ``snapshot=True`` starts with a ``task.snapshot`` of the task. With
        ``transport="poll"`` only the terminal event is yielded (polling sees tasks, not
        their logs).
        """
        follower = Follower(self._http, self._order(transport))
        return follower.follow(task_id, after, snapshot=snapshot)

    async def stream(
        self,
        app: str,
        skill: str,
        requests: Requests,
        *,
        transport: TransportName = "auto",
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Call a skill and yield the task's events until the terminal one.

        On a WebSocket the call is made with the ``call`` op on the connection that then
        carries the events; elsewhere (or with an ``idempotency_key``, which only REST
        knows) it is a POST with ``Prefer: respond-async``, then ``events()``. Should the
        WebSocket drop before the server accepted the call, ``TransportError`` is raised and
        the call may or may not have started: pass an ``idempotency_key`` to make a retry
        of ``stream()`` safe.
        """
        order = self._order(transport)
        if order[0] == "ws" and idempotency_key is None:
            try:
                session = await WebSocketSession.open(self.settings)
            except TransportUnavailable:
                if len(order) == 1:
                    raise
                order = order[1:]
            except TransportError:
                pass  # not reachable now: the POST retries, and following reconnects
            else:
                async with session:
                    op = CallOp(
                        app=app,
                        skill=skill,
                        requests=[dict(r) for r in requests],
                        webhook_url=webhook_url,
                        metadata=dict(metadata or {}),
                    )
                    task_id = await session.call(op)
                    follow = Follower(self._http, order).follow(
                        task_id, first=session.events(task_id)
                    )
                    async with contextlib.aclosing(follow):
                        async for event in follow:
                            yield event
                return
        task = await self.call(
            app,
            skill,
            requests,
            wait=0,
            webhook_url=webhook_url,
            idempotency_key=idempotency_key,
            metadata=metadata,
        )
        follow = Follower(self._http, order).follow(task.task_id)
        async with contextlib.aclosing(follow):
            async for event in follow:
                yield event

    async def stream_text(
        self,
        task: str | Task,
        *,
        index: int = 0,
        output: int | None = None,
        field: str = "text",
        transport: TransportName = "auto",
    ) -> AsyncGenerator[str, None]:
        """The text of a streamed output as it grows: each chunk once, in order.

        Follows output ``output`` of request ``index`` (default: the first output of that
        request whose ``field`` is a string, e.g. ``{"type": "text", "text": ""}``) until the
        request ends or the task does; the chunks joined are the output's final ``field``.
        With a task id, the stream starts with a snapshot (the text so far in one chunk);
        with a ``Task`` (e.g. from ``call(..., wait=0)``), from that Task on. A dropped
        connection resumes after the last event seen, and a snapshot met on the way (a
        resume past what the log keeps, a re-run of the request) yields only the characters
        not yielded yet, so no character is lost or repeated. How the request ended is the
        Task's to tell (``task()``).
        """
        if isinstance(task, Task):
            task_id, after, snapshot = task.task_id, task.last_seq, False
            outputs = TaskOutputs(task)
        else:
            task_id, after, snapshot = task, 0, True
            outputs = TaskOutputs()
        cursor = TextCursor(outputs, index, output, field)
        if chunk := cursor.advance():
            yield chunk
        follow = self.events(task_id, after=after, transport=transport, snapshot=snapshot)
        async with contextlib.aclosing(follow):
            async for event in follow:
                if chunk := cursor.advance(outputs.apply(event)):
                    yield chunk
                if is_terminal(event) or (event.index == index and event.type in _REQUEST_ENDS):
                    return
