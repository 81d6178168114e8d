"""The ``llm/chat`` skill: one Chat Completions request streamed from its upstream.

Output 0 is the assistant's message, ``{"type": "message", "role": "assistant", "text": ""}``,
grown by deltas on ``text``; each tool call is an output ``{"type": "tool_call", "id", "name",
"arguments": ""}`` grown by deltas on ``arguments``. The request's result (``request.completed``)
is ``{"finish_reason", "usage"}``. An upstream 429 or 503 puts the request back in the queue
(``request.queued``, reason ``upstream_rate_limit``) until its ``Retry-After``; any other
failure, or the last retry's, fails it with ``UPSTREAM_ERROR``, keeping what it streamed.
"""

from __future__ import annotations

import logging
import random
import time
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

from skillwire.protocol import ErrorCode, NotFound, SkillError, ValidationError

from .._logging import audit
from ..engine import App, Context
from ._bridge import LlmBridge, Route
from ._upstream import UpstreamFailure, Usage

__all__ = ["ChatInput", "ChatMessage", "build_app", "upstream_body"]

log = logging.getLogger("skillwire.llm")

BACKOFF_BASE = 1.0  # seconds before the first retry when the upstream names no Retry-After
BACKOFF_MAX = 60.0


class ChatMessage(msgspec.Struct, omit_defaults=True):
    """One message of the conversation, as Chat Completions takes it."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None


Temperature = Annotated[float, msgspec.Meta(ge=0, le=2)]
Penalty = Annotated[float, msgspec.Meta(ge=-2, le=2)]
Tokens = Annotated[int, msgspec.Meta(ge=1)]


class ChatInput(msgspec.Struct, omit_defaults=True):
    """A Chat Completions body (``stream`` and ``n`` are the bridge's to set: ``n`` is 1)."""

    model: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    messages: Annotated[list[ChatMessage], msgspec.Meta(min_length=1)]
    temperature: Temperature | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    max_tokens: Tokens | None = None
    max_completion_tokens: Tokens | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    user: str | None = None
    n: Annotated[int, msgspec.Meta(ge=1, le=1)] | None = None


def upstream_body(body: ChatInput, model: str) -> dict[str, Any]:
    """What goes upstream: the request with the upstream's own model name, streamed."""
    payload: dict[str, Any] = msgspec.to_builtins(body)
    payload.pop("n", None)
    payload["model"] = model
    payload["stream"] = True
    payload["stream_options"] = {"include_usage": True}
    return payload


def _retry_at(delay: float) -> datetime:
    return datetime.fromtimestamp(time.time() + delay, UTC)


def _backoff(attempt: int) -> float:
    delay: float = min(BACKOFF_BASE * 2.0 ** (attempt - 1), BACKOFF_MAX)
    return delay * (0.75 + random.random() / 2)


class _Answer:
    """One attempt's answer as it streams: output numbers, finish reason, usage."""

    __slots__ = ("chunks", "finish_reason", "message", "tools", "usage")

    @property
    def started(self) -> bool:
        """Some answer (text or a tool call) has come."""
        return self.chunks > 0 or bool(self.tools)

    def __init__(self) -> None:
        self.message: int | None = None
        self.tools: dict[int, int] = {}  # the upstream's tool call index -> our output number
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.chunks = 0  # chunks that carried answer (text or arguments)


class _Pending:
    """Text for one field of one output, gathered from the chunks of a batch: one append.

    Only consecutive pieces for the same output and field are joined, so the deltas stay in
    the upstream's order; a new output (a tool call) sends what is gathered first.
    """

    __slots__ = ("field", "output", "parts")

    def __init__(self) -> None:
        self.output = -1
        self.field = ""
        self.parts: list[str] = []

    async def add(self, ctx: Context, output: int, field: str, text: str) -> None:
        if self.parts and (output != self.output or field != self.field):
            await self.flush(ctx)
        self.output, self.field = output, field
        self.parts.append(text)

    async def flush(self, ctx: Context) -> None:
        if self.parts:
            parts, self.parts = self.parts, []
            await ctx.append(
                self.output, self.field, parts[0] if len(parts) == 1 else "".join(parts)
            )


async def _stream(
    ctx: Context, bridge: LlmBridge, route: Route, payload: dict[str, Any]
) -> _Answer:
    """One attempt. The chunks that arrived together go out as one delta per run of text
    (the contract allows merged deltas): a gateway that falls behind catches up in fewer,
    larger steps, and one that keeps up sends each chunk as soon as it comes."""
    answer = _Answer()
    metrics = bridge.metrics
    pending = _Pending()
    sent = time.monotonic()
    async with aclosing(route.upstream.stream_batches(payload)) as batches:
        async for batch in batches:
            for chunk in batch:
                if chunk.usage is not None:
                    answer.usage = chunk.usage
                for choice in chunk.choices:
                    if choice.index != 0:
                        continue
                    if answer.message is None:
                        answer.message = await ctx.output(
                            {"type": "message", "role": "assistant", "text": ""}
                        )
                    delta = choice.delta
                    if delta is not None:
                        if (
                            metrics is not None
                            and not answer.started
                            and (delta.content or delta.tool_calls)
                        ):  # the first token, not the role-only chunk servers send at once
                            metrics.first_token.labels(route.upstream.name, route.model).observe(
                                time.monotonic() - sent
                            )
                        if delta.content:
                            answer.chunks += 1
                            await pending.add(ctx, answer.message, "text", delta.content)
                        for call in delta.tool_calls or ():
                            await _tool_call(ctx, answer, pending, call)
                    if choice.finish_reason is not None:
                        answer.finish_reason = choice.finish_reason
            await pending.flush(ctx)
    if answer.message is None:  # an empty answer is still an answer
        answer.message = await ctx.output({"type": "message", "role": "assistant", "text": ""})
    return answer


async def _tool_call(ctx: Context, answer: _Answer, pending: _Pending, call: Any) -> None:
    function = call.function
    n = answer.tools.get(call.index)
    if n is None:
        await pending.flush(ctx)  # what came before the new output goes before it
        n = await ctx.output(
            {
                "type": "tool_call",
                "id": call.id or "",
                "name": (function.name if function is not None else None) or "",
                "arguments": "",
            }
        )
        answer.tools[call.index] = n
    if function is not None and function.arguments:
        answer.chunks += 1
        await pending.add(ctx, n, "arguments", function.arguments)


async def _provider_slot(ctx: Context, bridge: LlmBridge, route: Route) -> None:
    """Wait (``request.queued``, ``provider_rate_limit``) for ``upstream.chat.model``'s limit."""
    if bridge.limits is None:
        return
    found = bridge.limits.provider_limit(route.upstream.name, "chat", route.model)
    if found is None:
        return
    key, item = found
    while True:
        decision = await bridge.limits.hit(item, "provider", key)
        if decision is None or decision.allowed:
            return
        await ctx.requeue("provider_rate_limit", _retry_at(decision.reset_after + 0.01))


def _failure(route: Route, exc: UpstreamFailure) -> SkillError:
    details = {"upstream": route.upstream.name, "status": exc.status, "message": exc.message}
    return SkillError(
        f"upstream {route.upstream.name} failed: {exc.message}",
        code=ErrorCode.UPSTREAM_ERROR,
        details=details,
    )


async def chat_request(ctx: Context, bridge: LlmBridge, body: ChatInput) -> None:
    """Run one request to the end: the ``chat`` skill's body."""
    try:
        route = await bridge.resolve(body.model)
    except (NotFound, ValidationError) as exc:
        raise SkillError(exc.message, code="VALIDATION_ERROR", details=exc.details) from None
    payload = upstream_body(body, route.model)
    upstream = route.upstream
    metrics = bridge.metrics
    attempt = 0
    while True:
        await _provider_slot(ctx, bridge, route)
        try:
            answer = await _stream(ctx, bridge, route, payload)
            break
        except UpstreamFailure as exc:
            status = "none" if exc.status is None else str(exc.status)
            if metrics is not None:
                metrics.errors.labels(upstream.name, status).inc()
            if not exc.retryable or attempt >= upstream.config.max_retries:
                raise _failure(route, exc) from None
            attempt += 1
            if metrics is not None:
                metrics.retries.labels(upstream.name, status).inc()
            delay = exc.retry_after if exc.retry_after is not None else _backoff(attempt)
            await ctx.requeue("upstream_rate_limit", _retry_at(delay))
    usage = msgspec.to_builtins(answer.usage) if answer.usage is not None else None
    if metrics is not None:
        tokens = metrics.tokens
        if answer.usage is not None:
            tokens.labels(upstream.name, route.model, "prompt").inc(answer.usage.prompt_tokens)
            tokens.labels(upstream.name, route.model, "completion").inc(
                answer.usage.completion_tokens
            )
        else:  # no usage reported: count the chunks of answer, a token each (as most stream)
            tokens.labels(upstream.name, route.model, "completion").inc(answer.chunks)
    ctx.set_result({"finish_reason": answer.finish_reason or "stop", "usage": usage})
    audit(
        "llm.chat",
        ctx.principal,
        task_id=ctx.task_id,
        index=ctx.index,
        model=route.name,
        finish_reason=answer.finish_reason or "stop",
        prompt_tokens=answer.usage.prompt_tokens if answer.usage else None,
        completion_tokens=answer.usage.completion_tokens if answer.usage else None,
    )


def build_app(bridge: LlmBridge) -> App:
    """The ``llm`` app, its ``chat`` skill bound to ``bridge``."""
    app = App("llm", "Chat Completions streamed from the configured upstreams")

    @app.skill(
        "chat",
        mode="long",
        description="One Chat Completions request per item, streamed from its upstream.",
    )
    async def chat(body: ChatInput, ctx: Context) -> None:
        await chat_request(ctx, bridge, body)

    return app
