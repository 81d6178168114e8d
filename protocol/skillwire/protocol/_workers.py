"""Remote worker messages (subprotocol ``skillwire.worker.v1``): a tagged union on ``op``.

A remote worker connects to ``/api/v1/workers/ws``, says ``hello`` with the skills it serves,
and then receives ``work`` and ``cancel`` and answers with what the work produced
(``progress``, ``output``, ``delta``, ``completed``, ``failed``). The same answers, without
``work_id``, are the lines of an HTTP skill's NDJSON or SSE answer. Inbound messages tolerate
unknown fields; errors name the offending field.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ._codec import _field_and_constraint
from ._errors import BadRequest, SkillwireError, ValidationError
from ._models import ErrorBody, ErrorDetail, SkillMode
from ._ws import AuthOp, PingOp

__all__ = [
    "WORKER_SUBPROTOCOL",
    "CancelWork",
    "InvalidWorkerMessage",
    "SkillDeclaration",
    "Welcome",
    "Work",
    "WorkCompleted",
    "WorkDelta",
    "WorkError",
    "WorkFailed",
    "WorkOutput",
    "WorkProgress",
    "WorkerHello",
    "WorkerInbound",
    "WorkerInfo",
    "WorkerList",
    "WorkerMessage",
    "decode_work_message",
    "decode_worker_inbound",
    "encode_worker_message",
]

WORKER_SUBPROTOCOL = "skillwire.worker.v1"

Slug = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_-]{1,64}$")]
Positive = Annotated[int, msgspec.Meta(ge=1)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class SkillDeclaration(msgspec.Struct):
    """A skill a remote worker serves, as its ``hello`` declares it (and the backbone keeps)."""

    app: Slug
    skill: Slug
    input_schema: dict[str, Any] = msgspec.field(default_factory=lambda: {"type": "object"})
    description: str = ""
    mode: SkillMode = SkillMode.QUICK
    max_requests: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None
    timeout: Annotated[float, msgspec.Meta(gt=0)] | None = None

    @property
    def key(self) -> str:
        return f"{self.app}/{self.skill}"

    def same_contract(self, other: SkillDeclaration) -> bool:
        """The first declaration fixes the schema and mode; a later one must match them."""
        return self.input_schema == other.input_schema and self.mode == other.mode


class WorkerHello(msgspec.Struct, tag_field="op", tag="hello"):
    skills: list[SkillDeclaration]
    ref: str | None = None
    name: str = ""
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1


class WorkProgress(msgspec.Struct, tag_field="op", tag="progress"):
    progress: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
    work_id: str = ""
    message: str = ""


class WorkOutput(msgspec.Struct, tag_field="op", tag="output"):
    output: Any
    work_id: str = ""


class WorkDelta(msgspec.Struct, tag_field="op", tag="delta"):
    output: NonNegative
    field: str
    append: str
    work_id: str = ""


class WorkCompleted(msgspec.Struct, tag_field="op", tag="completed"):
    work_id: str = ""
    data: dict[str, Any] = {}


class WorkFailed(msgspec.Struct, tag_field="op", tag="failed"):
    error: ErrorDetail
    work_id: str = ""


# What a worker says about one work item, in order (also an HTTP skill's stream lines).
WorkerMessage = WorkProgress | WorkOutput | WorkDelta | WorkCompleted | WorkFailed
# Everything a worker may send on its WebSocket.
WorkerInbound = AuthOp | PingOp | WorkerHello | WorkerMessage


class Welcome(msgspec.Struct, tag_field="op", tag="welcome", omit_defaults=True):
    worker_id: str
    ref: str | None = None


class Work(msgspec.Struct, tag_field="op", tag="work"):
    work_id: str
    task_id: str
    index: int
    app: str
    skill: str
    input: Any
    attempt: int = 1


class CancelWork(msgspec.Struct, tag_field="op", tag="cancel"):
    work_id: str


class WorkError(msgspec.Struct, tag_field="op", tag="error", omit_defaults=True):
    error: ErrorBody
    ref: str | None = None
    work_id: str | None = None


class WorkerInfo(msgspec.Struct):
    """A connected worker, as ``GET /api/v1/workers`` lists it (times in RFC 3339)."""

    worker_id: str
    name: str
    principal: str
    skills: list[str]
    in_flight: int
    connected_at: str
    last_seen: str


class WorkerList(msgspec.Struct):
    items: list[WorkerInfo]


_WORKER_OPS = {"auth", "ping", "hello", "progress", "output", "delta", "completed", "failed"}
_WORK_OPS = {"progress", "output", "delta", "completed", "failed"}
_encoder = msgspec.json.Encoder()
_any_decoder = msgspec.json.Decoder()


class InvalidWorkerMessage(Exception):
    """A worker frame that could not be decoded: the error, and the frame's ``ref`` and
    ``work_id`` when it had them (the op error names them)."""

    def __init__(self, error: SkillwireError, ref: str | None, work_id: str | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.ref = ref
        self.work_id = work_id


def _string(raw: dict[str, Any], name: str) -> str | None:
    value = raw.get(name)
    return value if isinstance(value, str) else None


def _decode(frame: str | bytes, ops: set[str], union: Any) -> Any:
    try:
        raw = _any_decoder.decode(frame)
    except (msgspec.DecodeError, UnicodeError) as exc:
        raise InvalidWorkerMessage(BadRequest(f"not valid JSON: {exc}"), None, None) from exc
    except RecursionError as exc:
        raise InvalidWorkerMessage(BadRequest("nested too deeply"), None, None) from exc
    if not isinstance(raw, dict):
        raise InvalidWorkerMessage(BadRequest("a message must be a JSON object"), None, None)
    ref, work_id = _string(raw, "ref"), _string(raw, "work_id")
    op = raw.get("op")
    if not isinstance(op, str) or op not in ops:
        unknown = BadRequest(f"unknown op {op!r}", details={"field": "op", "allowed": sorted(ops)})
        raise InvalidWorkerMessage(unknown, ref, work_id)
    try:
        return msgspec.convert(raw, union)
    except msgspec.ValidationError as exc:
        field, constraint = _field_and_constraint(exc)
        error = ValidationError(
            f"invalid field `{field}`: {constraint}" if field else constraint,
            details={"field": field, "constraint": constraint},
        )
        raise InvalidWorkerMessage(error, ref, work_id) from exc


def decode_worker_inbound(frame: str | bytes) -> WorkerInbound:
    """Decode one frame a worker sent, or raise ``InvalidWorkerMessage``."""
    message: WorkerInbound = _decode(frame, _WORKER_OPS, WorkerInbound)
    return message


def decode_work_message(line: str | bytes) -> WorkerMessage:
    """Decode one line of an HTTP skill's stream (a WorkerMessage, ``work_id`` optional)."""
    message: WorkerMessage = _decode(line, _WORK_OPS, WorkerMessage)
    return message


def encode_worker_message(message: Welcome | Work | CancelWork | WorkError | Any) -> bytes:
    return _encoder.encode(message)
