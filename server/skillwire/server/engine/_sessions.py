"""Session operations shared by every channel: create, get, list, close, and the check a
call naming a session passes.

Visibility and retention as for tasks (``_tasks``): a session is shown only to its owner and
admins (404 to anyone else), and a session id this deployment issued that is no longer stored
answers 410 (retention is counted from a session's last activity, which is never before its
creation, so only an id past its creation time plus the window can have been forgotten).
"""

from __future__ import annotations

import time

from skillwire.protocol import (
    Expired,
    NotFound,
    Session,
    SessionBody,
    SessionStatus,
    format_time,
    new_session_id,
    session_id_time,
)

from ..auth import Principal
from ..backbone import Backbone, StoredSession

__all__ = ["SessionService"]


class SessionService:
    def __init__(self, backbone: Backbone, *, retention: float) -> None:
        self.backbone = backbone
        self.retention = retention

    async def create(self, principal: Principal, body: SessionBody) -> Session:
        now = time.time()
        session = Session(
            session_id=new_session_id(await self.backbone.id_secret(), now),
            title=body.title,
            metadata=body.metadata,
            status=SessionStatus.OPEN,
            created_at=format_time(now),
            updated_at=format_time(now),
            last_seq=0,
            task_ids=[],
        )
        await self.backbone.create_session(session, owner=principal.name)
        return session

    async def _absent(self, session_id: str) -> NotFound | Expired:
        created = session_id_time(await self.backbone.id_secret(), session_id)
        if created is not None and created + self.retention < time.time():
            return Expired(
                f"session {session_id} is past the retention window",
                details={"session_id": session_id},
            )
        return NotFound(f"session {session_id} not found", details={"session_id": session_id})

    async def get(self, principal: Principal, session_id: str) -> StoredSession:
        stored = await self.backbone.get_session(session_id)
        if stored is None:
            raise await self._absent(session_id)
        if not principal.may_see(stored.owner):
            raise NotFound(f"session {session_id} not found", details={"session_id": session_id})
        return stored

    async def check_joinable(self, principal: Principal, session_id: str) -> None:
        """A call may name this session: the caller's own (else 404; admins included: a task
        joins the session of whoever created it, so no one adds tasks to another principal's
        conversation), not past retention (410). Whether it is still open is the backbone's
        to check, with the task's creation (409): an idempotent replay of a call made before
        the session was closed still answers its task."""
        stored = await self.backbone.get_session(session_id)
        if stored is None:
            raise await self._absent(session_id)
        if stored.owner != principal.name:
            raise NotFound(f"session {session_id} not found", details={"session_id": session_id})

    async def list(
        self, principal: Principal, *, limit: int, offset: int
    ) -> tuple[list[Session], int]:
        return await self.backbone.list_sessions(
            owner=None if principal.is_admin else principal.name, limit=limit, offset=offset
        )

    async def close(self, principal: Principal, session_id: str) -> Session:
        await self.get(principal, session_id)
        return await self.backbone.close_session(session_id)
