"""The worker session's op rules, driven with strings in memory (no socket)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skillwire.server.auth import DEFAULT_ROLES, Principal
from skillwire.server.backbone import MemoryBackbone
from skillwire.server.channels._worker_session import CloseWorker, WorkerSession
from skillwire.server.engine import Registry, RemoteSkills, demo

from .helpers import TEXT_SCHEMA, declaration

WORKER = Principal("worker", "worker", DEFAULT_ROLES["worker"])
NARROW = Principal("narrow", "worker", DEFAULT_ROLES["worker"], scopes=("ext",))
USER = Principal("user", "user", DEFAULT_ROLES["user"])
KEYS = {"k-worker": WORKER, "k-user": USER}


class Link:
    """One session and everything it sent, decoded."""

    def __init__(self, remote: RemoteSkills, principal: Principal | None = WORKER) -> None:
        self.sent: list[dict[str, Any]] = []
        self.session = WorkerSession(remote, KEYS.get, self._send, principal=principal)

    def _send(self, frame: bytes) -> bool:
        self.sent.append(json.loads(frame))
        return True

    async def say(self, message: dict[str, Any] | str) -> list[dict[str, Any]]:
        """Send one frame; return what the session answered to it."""
        before = len(self.sent)
        await self.session.receive(message if isinstance(message, str) else json.dumps(message))
        return self.sent[before:]


@pytest.fixture
def remote() -> RemoteSkills:
    return RemoteSkills(MemoryBackbone(), Registry([demo], max_requests=5))


def hello(*skills: dict[str, Any], ref: str = "h") -> dict[str, Any]:
    return {"op": "hello", "ref": ref, "name": "t", "concurrency": 2, "skills": list(skills)}


async def test_only_auth_and_ping_before_authenticating(remote: RemoteSkills) -> None:
    """Unauthenticated, ping answers; any other op (or garbage) closes with 4401."""
    link = Link(remote, principal=None)
    assert await link.say({"op": "ping", "ref": "p"}) == [{"op": "pong", "ref": "p"}]
    for frame in [hello(declaration()), "garbage"]:
        with pytest.raises(CloseWorker) as caught:
            await link.say(frame)
        assert caught.value.code == 4401


async def test_the_auth_op_authenticates_a_worker_key(remote: RemoteSkills) -> None:
    """auth with a worker key answers authenticated; a bad token closes with 4401."""
    link = Link(remote, principal=None)
    (reply,) = await link.say({"op": "auth", "ref": "a", "token": "k-worker"})
    assert reply == {"op": "authenticated", "principal": "worker", "ref": "a"}
    with pytest.raises(CloseWorker) as caught:
        await Link(remote, principal=None).say({"op": "auth", "token": "nope"})
    assert caught.value.code == 4401


async def test_a_key_without_the_work_permission_is_closed_4403(remote: RemoteSkills) -> None:
    """A user key (no `work`) authenticating on the worker socket is closed with 4403."""
    with pytest.raises(CloseWorker) as caught:
        await Link(remote, principal=None).say({"op": "auth", "token": "k-user"})
    assert caught.value.code == 4403


async def test_hello_registers_and_is_welcomed(remote: RemoteSkills) -> None:
    """hello gets welcome with a worker id; the skill is then known as remote."""
    link = Link(remote)
    (welcome,) = await link.say(hello(declaration()))
    assert welcome["op"] == "welcome" and welcome["ref"] == "h"
    assert welcome["worker_id"].startswith("wkr_")
    spec = await remote.find("ext", "upper")
    assert spec is not None and spec.remote
    assert spec.input_schema == TEXT_SCHEMA


async def test_hello_outside_the_scopes_registers_nothing(remote: RemoteSkills) -> None:
    """A hello naming an app outside the key's scopes gets FORBIDDEN and nothing registers."""
    link = Link(remote, principal=NARROW)
    (error,) = await link.say(hello(declaration(), declaration(app="other")))
    assert error["op"] == "error" and error["ref"] == "h"
    assert error["error"]["code"] == "FORBIDDEN"
    assert error["error"]["details"]["skills"] == ["other/upper"]
    assert await remote.find("ext", "upper") is None


async def test_a_different_declaration_gets_conflict(remote: RemoteSkills) -> None:
    """A second worker declaring a skill with another schema gets CONFLICT for it alone."""
    await Link(remote).say(hello(declaration()))
    other = declaration(input_schema={"type": "object", "properties": {}})
    replies = await Link(remote).say(hello(other, declaration("lower")))
    (error,) = [r for r in replies if r["op"] == "error"]
    assert error["error"]["code"] == "CONFLICT"
    assert error["error"]["details"]["skill"] == "ext/upper"
    assert replies[-1]["op"] == "welcome"
    assert await remote.find("ext", "lower") is not None


async def test_a_declaration_naming_an_in_process_skill_gets_conflict(
    remote: RemoteSkills,
) -> None:
    """demo/echo is served in-process: a worker declaring it gets CONFLICT."""
    replies = await Link(remote).say(hello(declaration("echo", app="demo")))
    assert replies[0]["error"]["code"] == "CONFLICT"
    assert "in-process" in replies[0]["error"]["message"]


async def test_an_invalid_schema_is_refused(remote: RemoteSkills) -> None:
    """A declared input_schema that is not a JSON Schema gets VALIDATION_ERROR."""
    replies = await Link(remote).say(hello(declaration(input_schema={"type": 12})))
    assert replies[0]["error"]["code"] == "VALIDATION_ERROR"
    assert replies[0]["error"]["details"]["skill"] == "ext/upper"


async def test_invalid_messages_get_op_errors(remote: RemoteSkills) -> None:
    """Garbage, unknown ops, a second hello, unknown work ids: op errors, never a close."""
    link = Link(remote)
    assert (await link.say("{nope"))[0]["error"]["code"] == "BAD_REQUEST"
    (before_hello,) = await link.say({"op": "completed", "work_id": "w1"})
    assert before_hello["error"]["code"] == "NOT_FOUND"  # API.md: an unknown work_id
    await link.say(hello(declaration()))
    (unknown,) = await link.say({"op": "output", "work_id": "w1", "output": 1})
    assert unknown["error"]["code"] == "NOT_FOUND" and unknown["work_id"] == "w1"
    (no_id,) = await link.say({"op": "completed"})
    assert no_id["error"]["details"]["field"] == "work_id"
    (again,) = await link.say(hello(declaration(), ref="h2"))
    assert again["error"]["code"] == "BAD_REQUEST" and again["ref"] == "h2"
    (bad,) = await link.say({"op": "progress", "work_id": "w1", "progress": "x", "ref": "r"})
    assert bad["error"]["code"] == "VALIDATION_ERROR" and bad["ref"] == "r"


async def test_a_full_inbox_holds_the_reader_until_there_is_room() -> None:
    """Past INBOX_LIMIT unrelayed messages, the next put waits (the socket is not read) until
    the relay takes one; nothing is dropped."""
    from skillwire.protocol import WorkOutput
    from skillwire.server.engine._remote_worker import INBOX_LIMIT, Inbox

    inbox = Inbox()
    for i in range(INBOX_LIMIT):
        await inbox.put(WorkOutput(output=i, work_id="w"))
    blocked = asyncio.create_task(inbox.put(WorkOutput(output=INBOX_LIMIT, work_id="w")))
    await asyncio.sleep(0)
    assert not blocked.done()
    assert (await inbox.get()).output == 0
    await asyncio.wait_for(blocked, timeout=1)
    taken = [(await inbox.get()).output for _ in range(INBOX_LIMIT)]
    assert taken == list(range(1, INBOX_LIMIT + 1))


_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
_OPS = st.sampled_from(
    ["hello", "progress", "output", "delta", "completed", "failed", "ping", "x", 3]
)
_FRAMES = st.dictionaries(
    st.sampled_from(["op", "ref", "work_id", "skills", "progress", "output", "field", "append",
                     "error", "data", "concurrency", "token", "name"]),
    _VALUES,
) | st.builds(lambda op, rest: {"op": op, **rest}, _OPS,
                              st.dictionaries(st.text(max_size=8), _VALUES, max_size=4))  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists((_FRAMES | st.text()).filter(lambda f: "auth" not in str(f)), max_size=6))
def test_an_authenticated_worker_never_breaks_the_session(frames: list[Any]) -> None:
    """Any sequence of frames gets replies or op errors; nothing raises, the session stays."""

    async def drive() -> None:
        remote = RemoteSkills(MemoryBackbone(), Registry([demo], max_requests=5))
        link = Link(remote)
        for frame in frames:
            replies = await link.say(frame if isinstance(frame, str) else json.dumps(frame))
            for reply in replies:
                assert reply["op"] in {"error", "welcome", "pong", "authenticated"}
        link.session.closed()

    asyncio.run(drive())
