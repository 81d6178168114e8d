"""The WebSocket op rules (the sans-I/O session): strings in, actions out, no server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from skillwire.protocol import (
    Authenticated,
    CloseCode,
    ErrorMessage,
    InternalError,
    NotFound,
    Pong,
    encode_server_message,
)
from skillwire.server._config import Config, KeyConfig
from skillwire.server.auth import KeyStore
from skillwire.server.channels._outbox import OutboxClosed
from skillwire.server.channels._subscription import SlowConsumer
from skillwire.server.channels._ws_session import (
    Call,
    Cancel,
    Close,
    Reply,
    Subscribe,
    Unsubscribe,
    WebSocketSession,
)

KEYS = KeyStore.from_config(
    Config(
        keys=[
            KeyConfig(name="user", role="user", key="sk_user"),
            KeyConfig(name="reader", role="reader", key="sk_reader"),
        ],
        roles={"reader": ["read"]},
    ),
    {},
)
LIMIT = 1024


def _op(**fields: Any) -> str:
    return json.dumps(fields)


def _signed_in(token: str = "sk_user") -> WebSocketSession:
    session = WebSocketSession()
    assert isinstance(session.receive(_op(op="auth", token=token), KEYS), Reply)
    return session


def _wire(action: object) -> dict[str, Any]:
    """What a Reply puts on the wire."""
    assert isinstance(action, Reply), action
    decoded: dict[str, Any] = json.loads(encode_server_message(action.message))
    return decoded


def test_auth_op_with_a_valid_token_authenticates() -> None:
    """`auth` with a known key answers `authenticated` with the key's name and sets the principal."""
    session = WebSocketSession()
    action = session.receive(_op(op="auth", token="sk_user", ref="a"), KEYS)
    assert action == Reply(Authenticated(principal="user", ref="a"))
    assert session.principal is not None and session.principal.name == "user"


def test_auth_op_with_an_unknown_token_closes_4401() -> None:
    """`auth` with a key nobody holds closes the connection with 4401 and authenticates nothing."""
    session = WebSocketSession()
    action = session.receive(_op(op="auth", token="sk_wrong"), KEYS)
    assert action == Close(CloseCode.UNAUTHENTICATED, "invalid token")
    assert session.principal is None


def test_ping_is_answered_before_authentication() -> None:
    """`ping` needs no credentials: it is answered with `pong` carrying its ref."""
    assert WebSocketSession().receive(_op(op="ping", ref="p"), KEYS) == Reply(Pong(ref="p"))


@pytest.mark.parametrize(
    "text",
    [
        _op(op="subscribe", task_id="tsk_x"),
        _op(op="call", app="demo", skill="echo", requests=[{}]),
        _op(op="nonsense"),
        "not json",
    ],
)
def test_anything_but_auth_or_ping_before_authentication_closes_4401(text: str) -> None:
    """Before `auth`, any other op, valid or not, closes with 4401 "authenticate first"."""
    action = WebSocketSession().receive(text, KEYS)
    assert action == Close(CloseCode.UNAUTHENTICATED, "authenticate first")


def test_bad_op_after_authentication_is_an_op_error_not_a_close() -> None:
    """Once authenticated, an unknown op gets a BAD_REQUEST op error carrying its ref."""
    reply = _wire(_signed_in().receive(_op(op="nonsense", ref="n"), KEYS))
    assert reply["op"] == "error"
    assert reply["ref"] == "n"
    assert reply["error"]["code"] == "BAD_REQUEST"


def test_invalid_json_after_authentication_is_an_op_error() -> None:
    """A frame that is not JSON gets a BAD_REQUEST op error without a ref."""
    reply = _wire(_signed_in().receive("{", KEYS))
    assert reply["error"]["code"] == "BAD_REQUEST"
    assert reply["ref"] is None


def test_frame_over_the_limit_closes_1009() -> None:
    """A frame larger than the limit, in UTF-8 bytes, closes with 1009 before it is decoded."""
    text = _op(op="ping", pad="é" * LIMIT)
    action = _signed_in().receive_frame(text, None, limit=LIMIT, keys=KEYS)
    assert action == Close(CloseCode.MESSAGE_TOO_BIG, "message too big")


def test_binary_frame_is_an_op_error() -> None:
    """A binary frame is refused with a BAD_REQUEST op error; the connection stays open."""
    reply = _wire(_signed_in().receive_frame(None, b"{}", limit=LIMIT, keys=KEYS))
    assert reply["error"]["code"] == "BAD_REQUEST"
    assert "binary" in reply["error"]["message"]


def test_subscribe_unsubscribe_cancel_and_call_become_actions_for_the_pump() -> None:
    """The I/O ops of an authorised principal become actions carrying the op and principal."""
    session = _signed_in()
    subscribe = session.receive(_op(op="subscribe", task_id="tsk_a", after=3), KEYS)
    assert isinstance(subscribe, Subscribe)
    assert (subscribe.op.task_id, subscribe.op.after) == ("tsk_a", 3)
    assert subscribe.principal.name == "user"
    unsubscribe = session.receive(_op(op="unsubscribe", task_id="tsk_a"), KEYS)
    assert isinstance(unsubscribe, Unsubscribe)
    assert unsubscribe.op.task_id == "tsk_a"
    cancel = session.receive(_op(op="cancel", task_id="tsk_a", ref="c"), KEYS)
    assert isinstance(cancel, Cancel)
    assert cancel.op.ref == "c"
    call = session.receive(_op(op="call", app="demo", skill="echo", requests=[{}]), KEYS)
    assert isinstance(call, Call)
    assert (call.op.app, call.op.skill) == ("demo", "echo")


def test_op_without_its_permission_is_forbidden_with_its_ref() -> None:
    """A role without `cancel` gets FORBIDDEN naming the permission for `cancel`, not an action."""
    reply = _wire(_signed_in("sk_reader").receive(_op(op="cancel", task_id="t", ref="c"), KEYS))
    assert reply["ref"] == "c"
    assert reply["error"]["code"] == "FORBIDDEN"
    assert reply["error"]["details"] == {"permission": "cancel"}


def test_call_op_is_handed_on_before_its_permission_is_checked() -> None:
    """A `call` by a role without `call` still becomes a Call: it counts against the rate limit
    first, like a refused HTTP call, and TaskService.callable_skill refuses it then."""
    action = _signed_in("sk_reader").receive(_op(op="call", app="a", skill="s", requests=[]), KEYS)
    assert isinstance(action, Call)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (None, None),
        (OutboxClosed(), None),
        (SlowConsumer(), Close(CloseCode.TRY_AGAIN_LATER, "client too slow")),
    ],
)
def test_subscription_ending_quietly_or_too_slow(exc: BaseException | None, expected: Any) -> None:
    """A subscription that ends or whose outbox closed means nothing; a slow consumer closes 1013."""
    assert WebSocketSession.subscription_failed("tsk_a", exc) == expected


def test_subscription_failing_is_an_op_error() -> None:
    """A subscription failing with a skillwire error is that error; anything else INTERNAL_ERROR."""
    known = _wire(WebSocketSession.subscription_failed("t", NotFound("task t not found")))
    assert known["error"]["code"] == "NOT_FOUND"
    unknown = WebSocketSession.subscription_failed("t", RuntimeError("boom"))
    assert isinstance(unknown, Reply) and isinstance(unknown.message, ErrorMessage)
    assert unknown.message.error.code == InternalError.code
