"""The WebSocket session without I/O: a frame's text in, what to do about it out.

The rules of the ``skillwire.v1`` ops live here, apart from the connection that carries
them (the way the ``websockets`` library keeps its protocol apart from its I/O). A frame goes
in and one action comes out: a reply to send, a close code, or a call, subscribe, unsubscribe
or cancel for the pump (``_websocket.py``) to carry out against the runtime. Nothing here
awaits or touches a socket, so the rules are tested with strings in memory
(tests/channels/test_ws_session.py).

Which ops need authentication, which permission each op needs, what a bad frame gets (an
op error; never a close, except before authentication), which failures close the connection
and with which code: all of it is decided here.

The pump subclasses the session rather than holding one: thousands of idle connections each
hold a session, and one slotted object per connection is cheaper than two (bench scenario C).
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from skillwire.protocol import (
    Authenticated,
    AuthOp,
    BadRequest,
    CallOp,
    CancelOp,
    CloseCode,
    ErrorBody,
    ErrorMessage,
    InternalError,
    InvalidClientMessage,
    PingOp,
    Pong,
    ServerMessage,
    SkillwireError,
    SubscribeOp,
    UnsubscribeOp,
    decode_client_message,
)

from ..auth import KeyStore, Permission, Principal
from ._outbox import OutboxClosed
from ._subscription import SlowConsumer

__all__ = [
    "AUTH_TIMED_OUT",
    "RESTARTING",
    "TOO_SLOW",
    "Action",
    "Call",
    "Cancel",
    "Close",
    "Reply",
    "Subscribe",
    "Unsubscribe",
    "WebSocketSession",
    "error_reply",
]

log = logging.getLogger("skillwire.ws")


# -- the actions ---------------------------------------------------------------------------
class Reply(NamedTuple):
    """Send ``message`` to the client."""

    message: ServerMessage


class Close(NamedTuple):
    """Close the connection with ``code`` (a ``CloseCode``) and ``reason``."""

    code: int
    reason: str = ""


class Call(NamedTuple):
    """Start a task. The op counts against the key's rate limit first, like a request, and
    only then is the permission checked (``TaskService.callable_skill``): a refused call
    counts too."""

    op: CallOp
    principal: Principal


class Subscribe(NamedTuple):
    """Follow a task the principal may read (the subscribe's reply says where it stands)."""

    op: SubscribeOp
    principal: Principal


class Unsubscribe(NamedTuple):
    """Stop following a task (if followed) and answer ``ok``."""

    op: UnsubscribeOp


class Cancel(NamedTuple):
    """Cancel a task and answer ``ok``."""

    op: CancelOp
    principal: Principal


Action = Reply | Close | Call | Subscribe | Unsubscribe | Cancel

AUTH_TIMED_OUT = Close(CloseCode.UNAUTHENTICATED, "authentication timed out")
AUTHENTICATE_FIRST = Close(CloseCode.UNAUTHENTICATED, "authenticate first")
INVALID_TOKEN = Close(CloseCode.UNAUTHENTICATED, "invalid token")
TOO_BIG = Close(CloseCode.MESSAGE_TOO_BIG, "message too big")
TOO_SLOW = Close(CloseCode.TRY_AGAIN_LATER, "client too slow")
RESTARTING = Close(CloseCode.SERVICE_RESTART, "server restarting")
BINARY_REFUSED = "binary frames are not accepted; send JSON text"


def error_reply(ref: str | None, error: SkillwireError) -> Reply:
    """The op error for ``error``, answering the op whose ``ref`` is given."""
    body = ErrorBody(code=error.code, message=error.message, details=error.details)
    return Reply(ErrorMessage(error=body, ref=ref))


class WebSocketSession:
    """One connection's op rules; ``principal`` is None until it authenticates."""

    # Thousands of these sit idle: no per-instance dict (the pump adds its own slots).
    __slots__ = ("principal",)

    def __init__(self, principal: Principal | None = None) -> None:
        self.principal = principal

    def receive_frame(
        self, text: str | None, data: bytes | None, *, limit: int, keys: KeyStore
    ) -> Action:
        """A frame, as text or bytes: over ``limit`` bytes it closes the connection (1009);
        a binary frame is an op error; text is an op (``receive``)."""
        size = len(text.encode("utf-8")) if text is not None else len(data or b"")
        if size > limit:
            return TOO_BIG
        if text is None:
            return error_reply(None, BadRequest(BINARY_REFUSED))
        return self.receive(text, keys)

    def receive(self, text: str, keys: KeyStore) -> Action:
        """One op's text: what to do about it. Before authentication only ``auth`` and
        ``ping`` are accepted and anything else closes the connection (4401); after it,
        an op in error is answered with an op error and the connection stays open."""
        try:
            op = decode_client_message(text)
        except InvalidClientMessage as exc:
            if self.principal is None:
                return AUTHENTICATE_FIRST
            return error_reply(exc.ref, exc.error)
        if isinstance(op, PingOp):
            return Reply(Pong(ref=op.ref))
        if isinstance(op, AuthOp):
            principal = keys.lookup(op.token)
            if principal is None:
                return INVALID_TOKEN
            self.principal = principal
            return Reply(Authenticated(principal=principal.name, ref=op.ref))
        if self.principal is None:
            return AUTHENTICATE_FIRST
        try:
            return self._authorized(op, self.principal)
        except SkillwireError as exc:
            return error_reply(op.ref, exc)

    @staticmethod
    def _authorized(
        op: CallOp | SubscribeOp | UnsubscribeOp | CancelOp, principal: Principal
    ) -> Action:
        if isinstance(op, CallOp):
            return Call(op, principal)  # checked once counted: see Call
        if isinstance(op, SubscribeOp):
            return Subscribe(op, principal.require(Permission.READ))
        if isinstance(op, UnsubscribeOp):
            principal.require(Permission.READ)
            return Unsubscribe(op)
        return Cancel(op, principal.require(Permission.CANCEL))

    @staticmethod
    def subscription_failed(task_id: str, exc: BaseException | None) -> Action | None:
        """What a subscription that ended with ``exc`` means for the connection (None:
        nothing; it ended or the connection is closing anyway)."""
        if exc is None or isinstance(exc, OutboxClosed):
            return None
        if isinstance(exc, SlowConsumer):
            return TOO_SLOW
        if isinstance(exc, SkillwireError):
            return error_reply(None, exc)
        log.error("subscription to %s failed", task_id, exc_info=exc)
        return error_reply(None, InternalError("the subscription failed; subscribe again"))
