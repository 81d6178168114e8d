"""``Client``: the same API without asyncio, over an ``AsyncClient`` on a private loop.

Rather than a second implementation of every transport (sync httpx, sync websockets, a
second follower), a ``Client`` runs one ``AsyncClient`` on an event loop in a daemon thread
of its own (a "portal", as in anyio) and waits for each call there. Both clients therefore
behave the same, reconnects and resume included. An iterator pulls one event per step, and
closing it (or leaving its ``for`` loop) closes the stream.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Coroutine, Generator, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from skillwire.protocol import AppSkills, Event, Skill, Task, TaskList, TaskStatus

from ._backoff import Backoff
from ._client import AsyncClient, Requests
from ._settings import DEFAULT_TRANSPORTS, StreamTransport, TransportName

__all__ = ["Client"]

T = TypeVar("T")


class _Portal:
    """An event loop running in a daemon thread; ``run`` waits for a coroutine on it."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="skillwire-client", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt in the caller: stop the work too
            raise

    def iterate(self, agen: AsyncGenerator[T, None]) -> Generator[T, None, None]:
        try:
            while True:
                try:
                    item = self.run(agen.__anext__())
                except StopAsyncIteration:
                    return
                yield item
        finally:
            if not self.closed:
                self.run(agen.aclose())

    @property
    def closed(self) -> bool:
        return self._loop.is_closed()

    def close(self) -> None:
        if self.closed:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


class Client:
    """A blocking client for one skillwire server: ``AsyncClient``'s methods, without await.

    Use it as a context manager, or call ``close()``.
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
        self._portal = _Portal()

        async def build() -> AsyncClient:  # httpx binds to the loop it first runs on
            return AsyncClient(
                base_url,
                api_key=api_key,
                timeout=timeout,
                retries=retries,
                backoff=backoff,
                heartbeat_interval=heartbeat_interval,
                max_reconnects=max_reconnects,
                poll_wait=poll_wait,
                transports=transports,
                ws_url=ws_url,
                headers=headers,
            )

        try:
            self._async = self._portal.run(build())
        except BaseException:
            self._portal.close()
            raise
        self.settings = self._async.settings

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if not self._portal.closed:
            self._portal.run(self._async.aclose())
        self._portal.close()

    def apps(self) -> list[AppSkills]:
        return self._portal.run(self._async.apps())

    def skill(self, app: str, skill: str) -> Skill:
        return self._portal.run(self._async.skill(app, skill))

    def call(
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
        return self._portal.run(
            self._async.call(
                app,
                skill,
                requests,
                wait=wait,
                webhook_url=webhook_url,
                idempotency_key=idempotency_key,
                metadata=metadata,
            )
        )

    def task(self, task_id: str, wait: float | None = None) -> Task:
        return self._portal.run(self._async.task(task_id, wait))

    def tasks(
        self,
        *,
        status: TaskStatus | str | None = None,
        app: str | None = None,
        skill: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> TaskList:
        return self._portal.run(
            self._async.tasks(status=status, app=app, skill=skill, limit=limit, offset=offset)
        )

    def iter_tasks(
        self,
        *,
        status: TaskStatus | str | None = None,
        app: str | None = None,
        skill: str | None = None,
        page_size: int = 100,
    ) -> Iterator[Task]:
        return self._portal.iterate(
            self._async.iter_tasks(status=status, app=app, skill=skill, page_size=page_size)
        )

    def cancel(self, task_id: str) -> Task:
        return self._portal.run(self._async.cancel(task_id))

    def events(
        self,
        task_id: str,
        *,
        after: int = 0,
        transport: TransportName = "auto",
        snapshot: bool = False,
    ) -> Generator[Event, None, None]:
        return self._portal.iterate(
            self._async.events(task_id, after=after, transport=transport, snapshot=snapshot)
        )

    def stream(
        self,
        app: str,
        skill: str,
        requests: Requests,
        *,
        transport: TransportName = "auto",
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Generator[Event, None, None]:
        return self._portal.iterate(
            self._async.stream(
                app,
                skill,
                requests,
                transport=transport,
                webhook_url=webhook_url,
                idempotency_key=idempotency_key,
                metadata=metadata,
            )
        )

    def stream_text(
        self,
        task: str | Task,
        *,
        index: int = 0,
        output: int | None = None,
        field: str = "text",
        transport: TransportName = "auto",
    ) -> Generator[str, None, None]:
        """``AsyncClient.stream_text`` as a blocking iterator."""
        return self._portal.iterate(
            self._async.stream_text(
                task, index=index, output=output, field=field, transport=transport
            )
        )
