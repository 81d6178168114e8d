"""The op rules of one remote worker connection (``skillwire.worker.v1``), without I/O.

Frames come in through ``receive`` and go out through the ``send`` callable the pump gives
(``channels._workers``); the tests drive it with strings in memory. Before authenticating
only ``auth`` and ``ping`` are accepted (anything else closes with 4401); a key without the
``work`` permission is closed with 4403. Every other mistake is an op error and the
connection stays open.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from skillwire.protocol import (
    Authenticated,
    AuthOp,
    BadRequest,
    CloseCode,
    ErrorBody,
    Forbidden,
    InvalidWorkerMessage,
    NotFound,
    PingOp,
    Pong,
    SkillwireError,
    ValidationError,
    Welcome,
    WorkerHello,
    WorkError,
    decode_worker_inbound,
    encode_worker_message,
)

from .._logging import audit
from ..auth import Permission, Principal
from ..engine import RemoteSkills, RemoteWorker

__all__ = ["CloseWorker", "WorkerSession"]


class CloseWorker(Exception):
    """The connection must close with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class WorkerSession:
    __slots__ = ("_lookup", "last_heard", "principal", "remote", "send", "worker")

    def __init__(
        self,
        remote: RemoteSkills,
        lookup: Callable[[str], Principal | None],
        send: Callable[[bytes], bool],
        *,
        principal: Principal | None = None,
    ) -> None:
        self.remote = remote
        self._lookup = lookup
        self.send = send
        self.principal: Principal | None = None
        self.worker: RemoteWorker | None = None
        self.last_heard = time.monotonic()
        if principal is not None:
            self.authenticate(principal)

    def authenticate(self, principal: Principal) -> None:
        if not principal.has(Permission.WORK):
            raise CloseWorker(CloseCode.FORBIDDEN, "this key lacks the 'work' permission")
        self.principal = principal
        audit("worker.connect", principal.name)

    def error(
        self, error: SkillwireError, *, ref: str | None = None, work_id: str | None = None
    ) -> None:
        body = ErrorBody(code=error.code, message=error.message, details=error.details)
        self.send(encode_worker_message(WorkError(error=body, ref=ref, work_id=work_id)))

    async def receive(self, text: str | bytes) -> None:
        """Handle one frame the worker sent (any frame is a sign of life)."""
        self.last_heard = time.monotonic()
        if self.worker is not None:
            self.worker.last_seen = time.time()
        try:
            message = decode_worker_inbound(text)
        except InvalidWorkerMessage as exc:
            if self.principal is None:
                raise CloseWorker(CloseCode.UNAUTHENTICATED, "authenticate first") from None
            self.error(exc.error, ref=exc.ref, work_id=exc.work_id)
            return
        if isinstance(message, PingOp):
            self.send(encode_worker_message(Pong(ref=message.ref)))
        elif isinstance(message, AuthOp):
            principal = self._lookup(message.token)
            if principal is None:
                raise CloseWorker(CloseCode.UNAUTHENTICATED, "invalid token")
            self.authenticate(principal)
            self.send(
                encode_worker_message(Authenticated(principal=principal.name, ref=message.ref))
            )
        elif self.principal is None:
            raise CloseWorker(CloseCode.UNAUTHENTICATED, "authenticate first")
        elif isinstance(message, WorkerHello):
            await self.hello(self.principal, message)
        elif not message.work_id:
            missing = ValidationError(
                "invalid field `work_id`: required",
                details={"field": "work_id", "constraint": "required"},
            )
            self.error(missing)
        elif self.worker is None:
            # Nothing is ever handed to a connection before its hello, so every work_id is
            # unknown here: NOT_FOUND, as the contract says of an unknown work_id.
            unknown = NotFound(
                f"no work {message.work_id} on this connection (say hello first)",
                details={"work_id": message.work_id},
            )
            self.error(unknown, work_id=message.work_id)
        elif not await self.remote.deliver(self.worker, message):
            unknown = NotFound(
                f"no work {message.work_id} on this connection (finished or cancelled?)",
                details={"work_id": message.work_id},
            )
            self.error(unknown, work_id=message.work_id)

    async def hello(self, principal: Principal, hello: WorkerHello) -> None:
        if self.worker is not None:
            self.error(BadRequest("this connection already said hello"), ref=hello.ref)
            return
        outside = sorted({d.key for d in hello.skills if not principal.may_serve(d.app, d.skill)})
        if outside:
            self.error(
                Forbidden(
                    f"this key may not serve {', '.join(outside)}; nothing was registered",
                    details={"skills": outside},
                ),
                ref=hello.ref,
            )
            return
        worker = RemoteWorker(
            f"wkr_{secrets.token_urlsafe(12)}",
            hello.name,
            principal.name,
            hello.concurrency,
            self.send,
        )
        self.worker = worker
        self.remote.attach(worker)
        outcomes = await self.remote.declare(worker, hello.skills)
        await self.remote.announce(worker)
        for declaration, refused in outcomes:
            if refused is not None:
                refused.details.setdefault("skill", declaration.key)
                self.error(refused)
        audit(
            "worker.hello",
            principal.name,
            worker_id=worker.worker_id,
            name=hello.name,
            skills=worker.skills,
            concurrency=hello.concurrency,
        )
        self.send(encode_worker_message(Welcome(worker_id=worker.worker_id, ref=hello.ref)))

    def closed(self) -> None:
        """The connection ended: its unfinished work runs again elsewhere."""
        if self.worker is not None:
            self.remote.detach(self.worker)
        if self.principal is not None:
            audit(
                "worker.disconnect",
                self.principal.name,
                worker_id=self.worker.worker_id if self.worker is not None else None,
            )
