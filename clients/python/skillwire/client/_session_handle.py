"""``AsyncSession``: one session of an ``AsyncClient``, its calls and its log."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any

from skillwire.protocol import Session, SessionEvent, Task

from ._settings import TransportName

if TYPE_CHECKING:
    from ._client import AsyncClient, Requests

__all__ = ["AsyncSession"]


class AsyncSession:
    """A conversation: calls made through it join the session, and ``follow()`` yields every
    event of all its tasks (from any device) with one cursor, the session's ``seq``.

    ``session`` is the Session as last fetched (``refresh()`` fetches it again).
    """

    def __init__(self, client: AsyncClient, session: Session) -> None:
        self._client = client
        self.session = session

    @property
    def session_id(self) -> str:
        return self.session.session_id

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
        """``AsyncClient.call`` in this session."""
        return await self._client.call(
            app,
            skill,
            requests,
            wait=wait,
            webhook_url=webhook_url,
            idempotency_key=idempotency_key,
            metadata=metadata,
            session_id=self.session_id,
        )

    def follow(
        self, *, after: int = 0, snapshot: bool = False, transport: TransportName = "auto"
    ) -> AsyncGenerator[SessionEvent, None]:
        """``AsyncClient.follow_session`` of this session."""
        return self._client.follow_session(
            self.session_id, after=after, snapshot=snapshot, transport=transport
        )

    async def refresh(self) -> Session:
        self.session = await self._client.get_session(self.session_id)
        return self.session

    async def close(self) -> Session:
        """Close the session (its running tasks are cancelled); later calls get Conflict."""
        self.session = await self._client.close_session(self.session_id)
        return self.session
