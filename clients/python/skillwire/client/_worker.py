"""A remote worker: serve skills from this process to a skillwire gateway.

    worker = Worker("http://127.0.0.1:8000", key="sk_...", name="text-tools")

    @worker.skill(app="text", description="Upper-case a text")
    async def upper(ctx: WorkContext, text: str) -> dict[str, str]:
        return {"type": "text", "text": text.upper()}

    asyncio.run(worker.run())

The worker connects out to ``/api/v1/workers/ws`` (so it may sit behind a firewall), says
``hello`` with its skills, runs the ``work`` it receives (at most ``concurrency`` at once) and
answers with what each skill does: ``ctx.progress``, ``ctx.output``, ``ctx.stream`` /
``ctx.append``, ``ctx.set_result``; returning a value is one output, raising ``SkillError``
fails the request with its code. A ``cancel`` from the server cancels the skill. A lost
connection is opened again with backoff (the gateway runs the unfinished work elsewhere).
The input schema comes from the function's parameters, as for the server's ``App``, unless
``input_schema`` is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar, get_type_hints

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from skillwire.protocol import (
    WORKER_SUBPROTOCOL,
    ErrorDetail,
    SkillDeclaration,
    SkillError,
    SkillMode,
    SkillwireError,
    WorkCompleted,
    WorkDelta,
    WorkFailed,
    WorkOutput,
    WorkProgress,
    encode_worker_message,
    to_builtins,
)

from ._backoff import Backoff
from ._errors import error_from_close

__all__ = ["WorkContext", "Worker"]

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
log = logging.getLogger("skillwire.client.worker")


class WorkContext:
    """What a skill sees of the work it runs, and how it reports back."""

    def __init__(self, send: Callable[[Any], Awaitable[None]], work: dict[str, Any]) -> None:
        self._send = send
        self._outputs = 0
        self.result: dict[str, Any] = {}
        self.work_id: str = work["work_id"]
        self.task_id: str = work["task_id"]
        self.index: int = work["index"]
        self.app: str = work["app"]
        self.skill: str = work["skill"]
        self.attempt: int = work.get("attempt", 1)

    async def progress(self, fraction: float, message: str = "") -> None:
        """Report progress (0.0 to 1.0)."""
        fraction = min(max(float(fraction), 0.0), 1.0)
        await self._send(WorkProgress(progress=fraction, message=message, work_id=self.work_id))

    async def output(self, item: Any) -> int:
        """Emit one output; returns its number (for ``append``)."""
        await self._send(WorkOutput(output=to_builtins(item), work_id=self.work_id))
        self._outputs += 1
        return self._outputs - 1

    async def append(self, output: int, field: str, text: str) -> None:
        """Append ``text`` to string field ``field`` of output number ``output``."""
        if not 0 <= output < self._outputs:
            raise ValueError(f"output {output} was not emitted ({self._outputs} so far)")
        if text:
            await self._send(
                WorkDelta(output=output, field=field, append=text, work_id=self.work_id)
            )

    def stream(self, item: Any, field: str = "text") -> StreamedOutput:
        """``async with ctx.stream({"type": "text", "text": ""}) as out: await out.append(t)``."""
        built = to_builtins(item)
        if not isinstance(built, dict) or not isinstance(built.get(field), str):
            raise TypeError(f"ctx.stream needs an object whose field {field!r} is a string")
        return StreamedOutput(self, built, field)

    def set_result(self, data: Any) -> None:
        """What ``completed`` carries (the request's ``result``), e.g. ``{"usage": {...}}``."""
        built = to_builtins(data)
        if not isinstance(built, dict):
            raise TypeError("set_result takes an object (a dict or a Struct)")
        self.result = built


class _Sender:
    """One connection's outgoing messages: queued, and written by one task, as many per frame
    as are waiting (the gateway splits frames on newlines). A skill waits only when
    ``limit`` messages are queued, so emitting costs no network round trip each."""

    def __init__(self, conn: ClientConnection, limit: int = 256) -> None:
        self._conn = conn
        self._limit = limit
        self._queued: list[str] = []
        self._writer: asyncio.Task[None] | None = None

    async def send(self, line: str) -> None:
        self._queued.append(line)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())
        elif len(self._queued) >= self._limit:
            await asyncio.wait({self._writer})
            self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        writer = self._writer
        done = writer is not None and writer.done() and not writer.cancelled()
        if done and writer is not None and (exc := writer.exception()) is not None:
            raise exc

    async def _write(self) -> None:
        try:
            while self._queued:
                lines, self._queued = self._queued, []
                await self._conn.send("\n".join(lines))
        finally:
            if not self._queued:
                self._writer = None

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await self._writer


class StreamedOutput:
    def __init__(self, ctx: WorkContext, item: dict[str, Any], field: str) -> None:
        self._ctx = ctx
        self._item = item
        self._field = field
        self.number = -1

    async def __aenter__(self) -> StreamedOutput:
        self.number = await self._ctx.output(self._item)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def append(self, text: str) -> None:
        await self._ctx.append(self.number, self._field, text)


@dataclass(frozen=True, slots=True)
class _Skill:
    declaration: SkillDeclaration
    fn: Callable[..., Awaitable[Any]]
    input_type: type[msgspec.Struct] | None  # None: the raw input goes to ``fn``
    context_param: str | None
    input_param: str | None  # with a declared schema: the parameter given the raw input


def _from_signature(
    fn: Callable[..., Any], name: str
) -> tuple[type[msgspec.Struct], dict[str, Any], str | None]:
    """The input type and JSON Schema from the function's parameters (as the server's App)."""
    hints = get_type_hints(fn, include_extras=True)
    context_param: str | None = None
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []  # kw_only: any order
    for param in inspect.signature(fn).parameters.values():
        hint = hints.get(param.name, Any)
        if hint is WorkContext:
            context_param = param.name
        elif param.default is inspect.Parameter.empty:
            fields.append((param.name, hint))
        else:
            fields.append((param.name, hint, param.default))
    struct = msgspec.defstruct(f"{name.title().replace('_', '')}Input", fields, kw_only=True)
    (ref,), components = msgspec.json.schema_components([struct], ref_template="#/$defs/{name}")
    schema = dict(components.pop(ref["$ref"].rsplit("/", 1)[-1]))
    if components:
        schema["$defs"] = components
    return struct, schema, context_param


class Worker:
    def __init__(
        self,
        base_url: str,
        key: str | None = None,
        *,
        name: str = "",
        concurrency: int = 4,
        app: str | None = None,
        backoff: Backoff | None = None,
        ws_url: str | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        self.url = ws_url or base.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        self.url += "/api/v1/workers/ws" if ws_url is None else ""
        self.key = key
        self.name = name
        self.concurrency = concurrency
        self.app = app
        self.backoff = backoff or Backoff()
        self.skills: dict[str, _Skill] = {}
        self.worker_id: str | None = None
        self.refused: dict[str, ErrorDetail] = {}  # app/skill -> why the gateway refused it
        self.ready = asyncio.Event()  # set on each welcome, cleared when the connection drops
        self._stopping = False
        self._conn: ClientConnection | None = None
        self._running: dict[str, asyncio.Task[None]] = {}

    # -- declaring skills ----------------------------------------------------------------
    def skill(
        self,
        name: str | None = None,
        *,
        app: str | None = None,
        mode: SkillMode | str = SkillMode.QUICK,
        description: str | None = None,
        input_schema: dict[str, Any] | None = None,
        max_requests: int | None = None,
        timeout: float | None = None,
    ) -> Callable[[F], F]:
        """Serve an async function as ``app/name``. Without ``input_schema`` the schema comes
        from its parameters; with one, the function gets the raw input (a ``dict``)."""
        app_name = app or self.app
        if app_name is None:
            raise ValueError("name the app: Worker(..., app=...) or @worker.skill(app=...)")

        def register(fn: F) -> F:
            is_async = inspect.iscoroutinefunction(fn)  # (not narrowing fn: F is returned)
            if not is_async:
                raise TypeError(f"skill {fn.__name__} must be async")
            skill_name = name or fn.__name__
            input_type: type[msgspec.Struct] | None = None
            context_param: str | None = None
            input_param: str | None = None
            if input_schema is None:
                input_type, schema, context_param = _from_signature(fn, skill_name)
            else:
                schema = input_schema
                hints = get_type_hints(fn)
                for param in inspect.signature(fn).parameters:
                    if hints.get(param) is WorkContext:
                        context_param = param
                    elif input_param is None:
                        input_param = param
            doc = inspect.getdoc(fn) or ""
            declaration = SkillDeclaration(
                app=app_name,
                skill=skill_name,
                input_schema=schema,
                description=description if description is not None else doc.split("\n\n")[0],
                mode=SkillMode(mode),
                max_requests=max_requests,
                timeout=timeout,
            )
            msgspec.convert(to_builtins(declaration), SkillDeclaration)  # slugs checked now
            self.skills[declaration.key] = _Skill(
                declaration, fn, input_type, context_param, input_param
            )
            return fn

        return register

    # -- running -------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve until ``stop()``: connect, reconnecting with backoff whenever it drops.

        Raises ``SkillwireError`` when the gateway refuses the key (4401 or 4403)."""
        attempt = 0
        while not self._stopping:
            try:
                await self._serve_once()
                attempt = 0
            except _Refused as exc:
                raise exc.error from None
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as exc:
                log.info("worker connection lost (%s); reconnecting", exc)
            if self._stopping:
                return
            await asyncio.sleep(self.backoff.delay(attempt))
            attempt += 1

    async def stop(self) -> None:
        """Stop serving: close the connection; unfinished work runs again elsewhere."""
        self._stopping = True
        if self._conn is not None:
            await self._conn.close()

    async def _serve_once(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        try:
            conn = await connect(
                self.url,
                subprotocols=[Subprotocol(WORKER_SUBPROTOCOL)],
                additional_headers=headers,
                open_timeout=10,
                max_size=None,
            )
        except InvalidStatus as exc:
            raise OSError(f"upgrade refused with HTTP {exc.response.status_code}") from exc
        self._conn = conn
        sender = _Sender(conn)
        try:
            hello = {
                "op": "hello",
                "ref": "hello",
                "name": self.name,
                "concurrency": self.concurrency,
                "skills": [to_builtins(s.declaration) for s in self.skills.values()],
            }
            try:
                # The gateway may refuse the key before the hello is even sent: the refusal
                # can surface at the send as well as at the first read.
                await conn.send(msgspec.json.encode(hello).decode())
                async for frame in conn:
                    for line in str(frame).split("\n"):
                        if line.strip():
                            await self._handle(sender, msgspec.json.decode(line))
            except ConnectionClosed as exc:
                if exc.rcvd is not None and exc.rcvd.code in (4401, 4403):
                    raise _Refused(exc.rcvd.code, exc.rcvd.reason) from None
                raise
        finally:
            await sender.close()
            self.ready.clear()
            self._conn = None
            for job in list(self._running.values()):
                job.cancel()
            self._running.clear()

    async def _handle(self, sender: _Sender, message: Any) -> None:
        if not isinstance(message, dict):
            return
        op = message.get("op")
        if op == "work":
            work_id = message["work_id"]
            job = asyncio.create_task(self._work(sender, message), name=work_id)
            self._running[work_id] = job
            job.add_done_callback(lambda _: self._running.pop(work_id, None))
        elif op == "cancel":
            running = self._running.get(message.get("work_id", ""))
            if running is not None:
                running.cancel()
        elif op == "heartbeat":
            await sender.send('{"op":"ping"}')  # a sign of life: the gateway drops silent workers
        elif op == "welcome":
            self.worker_id = message.get("worker_id")
            self.ready.set()
        elif op == "error":
            error = msgspec.convert(message.get("error", {}), ErrorDetail)
            skill = error.details.get("skill")
            if isinstance(skill, str):
                self.refused[skill] = error
            log.warning("the gateway said: %s %s", error.code, error.message)

    async def _work(self, sender: _Sender, work: dict[str, Any]) -> None:
        async def send(message: Any) -> None:
            await sender.send(encode_worker_message(message).decode())

        ctx = WorkContext(send, work)
        skill = self.skills.get(f"{work['app']}/{work['skill']}")
        ending: Any
        try:
            if skill is None:
                raise SkillError(f"this worker does not serve {work['app']}/{work['skill']}")
            value = await self._call(skill, ctx, work.get("input"))
            if value is not None:
                await ctx.output(value)
            ending = WorkCompleted(work_id=ctx.work_id, data=ctx.result)
        except asyncio.CancelledError:
            return  # cancelled by the gateway, or the connection dropped: nothing to say
        except SkillwireError as exc:
            error = ErrorDetail(code=exc.code, message=exc.message, details=exc.details)
            ending = WorkFailed(error=error, work_id=ctx.work_id)
        except msgspec.ValidationError as exc:
            error = ErrorDetail(code="VALIDATION_ERROR", message=str(exc))
            ending = WorkFailed(error=error, work_id=ctx.work_id)
        except Exception as exc:
            log.exception("skill %s/%s failed", work["app"], work["skill"])
            error = ErrorDetail(code="SKILL_ERROR", message=f"{type(exc).__name__}: {exc}")
            ending = WorkFailed(error=error, work_id=ctx.work_id)
        with contextlib.suppress(ConnectionClosed):
            await send(ending)

    async def _call(self, skill: _Skill, ctx: WorkContext, raw: Any) -> Any:
        kwargs: dict[str, Any] = {}
        if skill.context_param is not None:
            kwargs[skill.context_param] = ctx
        if skill.input_type is None:
            if skill.input_param is not None:
                kwargs[skill.input_param] = raw
            return await skill.fn(**kwargs)
        value = msgspec.convert(raw, skill.input_type)
        kwargs.update(msgspec.structs.asdict(value))
        return await skill.fn(**kwargs)


class _Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.error = error_from_close(code, reason)
