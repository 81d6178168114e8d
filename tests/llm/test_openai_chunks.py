"""Events of an llm/chat task turned into OpenAI's chunks and completion, with hand-made logs."""

from __future__ import annotations

from typing import Any

from skillwire.server.llm._openai import DONE, ChunkTranslator, completion_of

USAGE = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def _event(seq: int, type_: str, data: Any = None, index: int | None = 0) -> dict[str, Any]:
    event: dict[str, Any] = {"task_id": "tsk_x", "seq": seq, "type": type_, "data": data or {}}
    if type_.startswith("request."):
        event["index"] = index
    return event


def _task(status: str, output: list[Any], result: Any = None, error: Any = None) -> dict[str, Any]:
    request = {
        "index": 0,
        "status": status if status != "partial" else "failed",
        "output": output,
        "outputs_dropped": 0,
        "result": result,
        "error": error,
    }
    return {"task_id": "tsk_x", "status": status, "requests": [request]}


MESSAGE = {"type": "message", "role": "assistant", "text": ""}
TOOL = {"type": "tool_call", "id": "call_1", "name": "add", "arguments": ""}
RESULT = {"finish_reason": "tool_calls", "usage": USAGE}
FINAL_OUTPUT = [{**MESSAGE, "text": "Hello"}, {**TOOL, "arguments": '{"a": 1}'}]

LOG = [
    _event(1, "task.queued", index=None),
    _event(2, "task.started", index=None),
    _event(3, "request.started"),
    _event(4, "request.output", MESSAGE),
    _event(5, "request.delta", {"output": 0, "field": "text", "append": "Hel"}),
    _event(6, "request.delta", {"output": 0, "field": "text", "append": "lo"}),
    _event(7, "request.output", TOOL),
    _event(8, "request.delta", {"output": 1, "field": "arguments", "append": '{"a'}),
    _event(9, "request.delta", {"output": 1, "field": "arguments", "append": '": 1}'}),
    _event(10, "request.completed", RESULT),
    _event(11, "task.completed", _task("completed", FINAL_OUTPUT, RESULT), index=None),
]


def _translator(include_usage: bool = True) -> ChunkTranslator:
    return ChunkTranslator("chatcmpl-x", "fake/alpha", 1700000000, include_usage)


def _run(translator: ChunkTranslator, events: list[dict[str, Any]]) -> list[Any]:
    chunks: list[Any] = []
    for event in events:
        more, ended = translator.feed(event)
        chunks.extend(more)
        if ended:
            break
    return chunks


def test_text_and_tool_call_chunks() -> None:
    """Deltas on text become content; deltas on arguments become tool_calls[].function."""
    chunks = _run(_translator(), LOG)
    deltas = [c["choices"][0]["delta"] for c in chunks if c is not DONE and c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert [d.get("content") for d in deltas[1:3]] == ["Hel", "lo"]
    assert deltas[3]["tool_calls"] == [
        {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "add", "arguments": ""},
        }
    ]
    fragments = [d["tool_calls"][0]["function"]["arguments"] for d in deltas[4:6]]
    assert fragments == ['{"a', '": 1}']
    assert deltas[4]["tool_calls"][0]["index"] == 0


def test_every_chunk_has_the_openai_fields() -> None:
    """Each chunk carries id, object, created and model; the stream ends with usage and [DONE]."""
    chunks = _run(_translator(), LOG)
    assert chunks[-1] is DONE
    for chunk in chunks[:-1]:
        assert chunk["id"] == "chatcmpl-x"
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["created"] == 1700000000
        assert chunk["model"] == "fake/alpha"
    finish = chunks[-3]
    assert finish["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "tool_calls",
    }
    usage = chunks[-2]
    assert usage["choices"] == []
    assert usage["usage"] == USAGE


def test_no_usage_chunk_unless_asked() -> None:
    """Without include_usage the finish chunk is followed by [DONE] alone."""
    chunks = _run(_translator(include_usage=False), LOG)
    assert chunks[-1] is DONE
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert all("usage" not in c for c in chunks[:-1])


def test_failure_ends_with_an_error_chunk() -> None:
    """request.failed becomes OpenAI's in-stream error object, and the stream ends."""
    error = {
        "code": "UPSTREAM_ERROR",
        "message": "upstream fake failed: boom",
        "details": {"upstream": "fake", "status": 500, "message": "boom"},
    }
    chunks = _run(_translator(), [*LOG[:6], _event(7, "request.failed", {"error": error})])
    assert chunks[-1]["error"]["code"] == "UPSTREAM_ERROR"
    assert chunks[-1]["error"]["type"] == "upstream_error"
    assert chunks[-1]["error"]["message"] == "upstream fake failed: boom"


def test_requeue_before_any_text_is_seamless() -> None:
    """A restart (429 retry) before any text was sent continues the same chunk stream."""
    events = [
        *LOG[:4],
        _event(5, "request.queued", {"reason": "upstream_rate_limit", "retry_at": "x"}),
        _event(6, "request.started"),
        _event(7, "request.output", MESSAGE),
        _event(8, "request.delta", {"output": 0, "field": "text", "append": "Hi"}),
    ]
    chunks = _run(_translator(), events)
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "Hi"},
    ]


def test_restart_after_text_ends_the_stream_with_an_error() -> None:
    """A request that starts over after text was sent ends the stream (text cannot be taken back)."""
    events = [*LOG[:6], _event(7, "request.started"), _event(8, "request.output", MESSAGE)]
    translator = _translator()
    chunks = _run(translator, events)
    assert chunks[-1]["error"]["code"] == "ANSWER_RESTARTED"
    assert translator.ended


def test_replayed_state_resumes_without_repeats() -> None:
    """Feeding the events a client had rebuilds the state: the rest comes exactly once."""
    whole = _run(_translator(), LOG)
    resumed = _translator()
    head = _run(resumed, LOG[:6])
    tail = _run(resumed, LOG[6:])
    assert head + tail == whole


def test_snapshot_sends_only_what_is_missing() -> None:
    """A snapshot after a gap sends the rest of each output, then ends like the task."""
    translator = _translator()
    _run(translator, LOG[:5])  # the client has "Hel"
    snapshot = _event(11, "task.snapshot", _task("completed", FINAL_OUTPUT, RESULT), index=None)
    chunks, ended = translator.feed(snapshot)
    assert ended
    assert chunks[0]["choices"][0]["delta"] == {"content": "lo"}
    assert chunks[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] == '{"a": 1}'
    assert chunks[-1] is DONE


def test_completion_from_the_task() -> None:
    """The finished Task gives a chat.completion with the text, tool calls, reason and usage."""
    answer = completion_of(_task("completed", FINAL_OUTPUT, RESULT), "chatcmpl-x", "fake/alpha", 5)
    assert answer["object"] == "chat.completion"
    choice = answer["choices"][0]
    assert choice["message"]["content"] == "Hello"
    assert choice["message"]["tool_calls"][0]["function"] == {
        "name": "add",
        "arguments": '{"a": 1}',
    }
    assert choice["finish_reason"] == "tool_calls"
    assert answer["usage"] == USAGE


def test_text_fast_path_frames_like_the_general_path() -> None:
    """A text delta framed from the template is byte for byte what the general path encodes."""
    import msgspec

    from skillwire.protocol import EncodedEvent
    from skillwire.server.http._routes_openai import _frames

    def encoded(event: dict[str, Any]) -> EncodedEvent:
        return EncodedEvent(event["seq"], event["type"], msgspec.json.encode(event))

    fast, general = _translator(), _translator()
    for event in LOG[:4]:
        _frames(fast, encoded(event))
        general.feed(event)
    tricky = _event(5, "request.delta", {"output": 0, "field": "text", "append": 'é "q" \n\\ </x>'})
    expected, _ = general.feed(tricky)
    assert (
        _frames(fast, encoded(tricky))
        == b"id: 5\ndata: " + msgspec.json.encode(expected[0]) + b"\n\n"
    )
    assert fast.outputs[0].sent == general.outputs[0].sent
    assert fast.content_sent


def test_line_separators_never_cut_a_frame() -> None:
    """U+2028, U+2029 and U+0085 in a token are escaped in the frame, like every skillwire frame."""
    import msgspec

    from skillwire.protocol import EncodedEvent
    from skillwire.server.http._routes_openai import _frames

    translator = _translator()
    for event in LOG[:4]:
        translator.feed(event)
    text = "a\u2028b\u2029c\u0085d"
    event = _event(5, "request.delta", {"output": 0, "field": "text", "append": text})
    frame = _frames(translator, EncodedEvent(5, "request.delta", msgspec.json.encode(event)))
    assert frame.decode().splitlines() == ["id: 5", frame.decode().split("\n")[1], ""]
    assert (
        msgspec.json.decode(frame.split(b"data: ", 1)[1])["choices"][0]["delta"]["content"] == text
    )
