"""A task of ``llm/chat`` as OpenAI answers: ``chat.completion`` and ``chat.completion.chunk``.

Pure: events in, JSON-ready dicts out. ``ChunkTranslator`` follows one request's events
(request 0: the front door sends exactly one) and turns each into the chunks OpenAI's SDKs
parse; ``completion_of`` builds the non-streaming answer from the finished Task.

What a chunk stream cannot say is "start again": a request that restarts after some of its
answer was sent (its worker died and another runs it from the start) ends the stream with an
error chunk (the SDKs raise ``APIError``); the Task, read by its id, holds the new answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from skillwire.protocol import encode

__all__ = [
    "DONE",
    "ChunkTranslator",
    "StreamEnd",
    "completion_of",
    "error_chunk",
    "openai_error_type",
]

# OpenAI's error ``type`` by HTTP status: its SDKs raise by status, some clients read the type.
_OPENAI_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    429: "rate_limit_error",
    502: "upstream_error",
}


def openai_error_type(status: int) -> str:
    return _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


DONE = "[DONE]"


def error_chunk(code: str, message: str, status: int, details: Mapping[str, Any]) -> dict[str, Any]:
    """What OpenAI puts in a stream that fails: ``data: {"error": {...}}``."""
    return {
        "error": {
            "message": message,
            "type": openai_error_type(status),
            "param": None,
            "code": code,
            "details": dict(details),
        }
    }


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The stream ends after the chunks it came with (``[DONE]`` or an error was sent)."""


@dataclass(slots=True)
class _Output:
    kind: str  # "message" or "tool_call"
    tool_index: int = -1
    sent: int = 0  # characters of its growing field already sent


@dataclass(slots=True)
class ChunkTranslator:
    """Turns the events of one request into ``chat.completion.chunk`` dicts.

    ``feed`` returns the chunks for one event (``DONE`` stands for ``data: [DONE]``) and
    whether the stream ends there. Feeding the events a client already had, with their
    chunks dropped, rebuilds the state a resumed stream needs.
    """

    completion_id: str
    model: str
    created: int
    include_usage: bool = False
    index: int = 0
    outputs: dict[int, _Output] = field(default_factory=dict)
    role_sent: bool = False
    content_sent: bool = False
    ended: bool = False
    tools: int = 0
    _text_head: bytes | None = None  # a content chunk's JSON before and after its text
    _text_tail: bytes = b""

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }

    def _usage_chunk(self, usage: Any) -> dict[str, Any]:
        return {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [],
            "usage": usage,
        }

    def feed(self, event: Mapping[str, Any]) -> tuple[list[Any], bool]:
        """The chunks for one event, and True when the stream ends after them."""
        if self.ended:
            return [], True
        type_ = event.get("type")
        if type_ == "task.snapshot":
            return self._snapshot(event.get("data") or {})
        if type_ in ("task.completed", "task.partial", "task.failed", "task.cancelled"):
            return self._terminal(type_, event.get("data") or {})
        if not isinstance(type_, str) or not type_.startswith("request."):
            return [], False
        if event.get("index", 0) != self.index:
            return [], False
        data = event.get("data") or {}
        if type_ == "request.started":
            return self._started()
        if type_ == "request.output":
            return self._output(data), False
        if type_ == "request.delta":
            return self._delta(data), False
        if type_ == "request.completed":
            reason = data.get("finish_reason") if isinstance(data, dict) else None
            return [self._chunk({}, reason or "stop")], False
        if type_ == "request.failed":
            return self._failed(data)
        return [], False

    def _started(self) -> tuple[list[Any], bool]:
        if self.content_sent:
            self.ended = True
            message = (
                "the answer restarted (its worker was lost); what was streamed is void: "
                "read the task for the new answer"
            )
            return [error_chunk("ANSWER_RESTARTED", message, 500, {})], True
        self.outputs = {}  # a run numbers its outputs from 0
        self.tools = 0
        return [], False

    def _output(self, item: Any) -> list[Any]:
        n = len(self.outputs)
        if not isinstance(item, dict):
            self.outputs[n] = _Output("other")
            return []
        if item.get("type") == "message":
            out = self.outputs[n] = _Output("message")
            delta: dict[str, Any] = {}
            if not self.role_sent:
                delta["role"] = "assistant"
                delta["content"] = ""
                self.role_sent = True
            text = item.get("text")
            if isinstance(text, str) and text:
                delta["content"] = text
                out.sent = len(text)
                self.content_sent = True
            return [self._chunk(delta)] if delta else []
        if item.get("type") == "tool_call":
            out = self.outputs[n] = _Output("tool_call", tool_index=self.tools)
            self.tools += 1
            arguments = item.get("arguments") or ""
            out.sent = len(arguments)
            self.content_sent = True
            call = {
                "index": out.tool_index,
                "id": item.get("id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": arguments},
            }
            return [self._chunk(self._with_role({"tool_calls": [call]}))]
        self.outputs[n] = _Output("other")
        return []

    def _with_role(self, delta: dict[str, Any]) -> dict[str, Any]:
        if not self.role_sent:
            self.role_sent = True
            return {"role": "assistant", "content": None, **delta}
        return delta

    def _delta(self, data: Any) -> list[Any]:
        if not isinstance(data, dict):
            return []
        out = self.outputs.get(data.get("output", -1))
        append = data.get("append")
        if out is None or not isinstance(append, str) or not append:
            return []
        out.sent += len(append)
        if out.kind == "message" and data.get("field") == "text":
            self.content_sent = True
            return [self._chunk({"content": append})]
        if out.kind == "tool_call" and data.get("field") == "arguments":
            self.content_sent = True
            call = {"index": out.tool_index, "function": {"arguments": append}}
            return [self._chunk({"tool_calls": [call]})]
        return []

    def text_frame(self, seq: int, output: int, append: str) -> bytes | None:
        """The SSE frame of a delta on a message's text, encoded straight from a template
        (the bulk of a stream: one per token); None when the general path must decide."""
        out = self.outputs.get(output)
        if self.ended or out is None or out.kind != "message" or not append:
            return None
        out.sent += len(append)
        self.content_sent = True
        if self._text_head is None:
            head = encode(self._chunk({"content": ""}))
            cut = head.index(b'"content":""') + len(b'"content":')
            self._text_head, self._text_tail = head[:cut], head[cut + 2 :]
        return b"id: %d\ndata: %b%b%b\n\n" % (
            seq,
            self._text_head,
            encode(append),  # Unicode line separators escaped, as in every frame
            self._text_tail,
        )

    def _failed(self, data: Any) -> tuple[list[Any], bool]:
        self.ended = True
        error = data.get("error") if isinstance(data, dict) else None
        error = error if isinstance(error, dict) else {}
        code = str(error.get("code") or "INTERNAL_ERROR")
        status = 502 if code == "UPSTREAM_ERROR" else 500
        details = error.get("details") if isinstance(error.get("details"), dict) else {}
        message = str(error.get("message") or "the request failed")
        return [error_chunk(code, message, status, details or {})], True

    def _terminal(self, type_: str, task: Any) -> tuple[list[Any], bool]:
        self.ended = True
        if type_ == "task.cancelled":
            return [error_chunk("CANCELLED", "the task was cancelled", 499, {})], True
        chunks: list[Any] = []
        if type_ == "task.completed" and self.include_usage:
            usage = _request_result(task, self.index).get("usage")
            chunks.append(self._usage_chunk(usage))
        chunks.append(DONE)
        return chunks, True

    def _snapshot(self, task: Any) -> tuple[list[Any], bool]:
        """A snapshot (the log no longer held what this stream had reached): send what the
        client is missing of each output, then end as the task did if it is finished."""
        requests = task.get("requests") if isinstance(task, dict) else None
        if not isinstance(requests, list) or len(requests) <= self.index:
            return [], False
        request = requests[self.index]
        dropped = int(request.get("outputs_dropped") or 0)
        chunks: list[Any] = []
        for offset, item in enumerate(request.get("output") or []):
            n = dropped + offset
            out = self.outputs.get(n)
            if out is None:
                while len(self.outputs) < n:
                    self.outputs[len(self.outputs)] = _Output("other")
                chunks.extend(self._output(item))
                continue
            key = "text" if out.kind == "message" else "arguments"
            value = item.get(key) if isinstance(item, dict) else None
            if isinstance(value, str) and len(value) > out.sent:
                field_ = "text" if out.kind == "message" else "arguments"
                chunks.extend(
                    self._delta({"output": n, "field": field_, "append": value[out.sent :]})
                )
        status = task.get("status")
        if status == "completed":
            result = _request_result(task, self.index)
            chunks.append(self._chunk({}, result.get("finish_reason") or "stop"))
            more, _ = self._terminal("task.completed", task)
            return chunks + more, True
        if status in ("failed", "partial"):
            more, _ = self._failed({"error": request.get("error") or {}})
            return chunks + more, True
        if status == "cancelled":
            more, _ = self._terminal("task.cancelled", task)
            return chunks + more, True
        return chunks, False


def _request_result(task: Any, index: int) -> dict[str, Any]:
    try:
        result = task["requests"][index].get("result")
    except (KeyError, IndexError, TypeError, AttributeError):
        return {}
    return result if isinstance(result, dict) else {}


def completion_of(
    task: Mapping[str, Any], completion_id: str, model: str, created: int
) -> dict[str, Any]:
    """The ``chat.completion`` object of a completed task's request 0."""
    request = task["requests"][0]
    text = ""
    tool_calls: list[dict[str, Any]] = []
    for item in request.get("output") or []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            text = str(item.get("text") or "")
        elif item.get("type") == "tool_call":
            tool_calls.append(
                {
                    "id": item.get("id"),
                    "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments", "")},
                }
            )
    result = _request_result(task, 0)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not tool_calls else None,
        "refusal": None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": result.get("finish_reason") or "stop",
            }
        ],
        "usage": result.get("usage"),
    }
