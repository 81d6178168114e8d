"""The configured HTTP skills as apps, and how one sub-request is sent and its answer read."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from skillwire.protocol import (
    ErrorCode,
    InvalidWorkerMessage,
    SkillDeclaration,
    SkillError,
    ValidationError,
    WorkCompleted,
    WorkDelta,
    WorkFailed,
    WorkOutput,
    WorkProgress,
    decode_work_message,
)

from .._config import HttpSkillConfig
from ..engine import App, Context, check_schema, declared_skill
from ..webhooks import UnsafeUrl, UrlGuard
from ..webhooks._transport import make_client
from ._messages import ndjson_lines, sse_data

__all__ = ["HttpSkills"]

CONNECT_TIMEOUT = 5.0
ERROR_BODY_LIMIT = 500  # characters of a failed answer kept in the error's details


def _failure(entry: HttpSkillConfig, message: str, status: int | None) -> SkillError:
    details = {"url": entry.url, "status": status}
    return SkillError(message, code=ErrorCode.UPSTREAM_ERROR, details=details)


class _HttpSkill:
    """One configured endpoint: its client (through the SSRF guard) and its headers."""

    def __init__(self, entry: HttpSkillConfig, default_timeout: float) -> None:
        self.entry = entry
        self._timeout = entry.timeout or default_timeout
        self._guard = UrlGuard(allow_private=entry.allow_private, allow_hosts=())
        self._client: httpx.AsyncClient | None = None

    def headers(self) -> dict[str, str]:
        return {name: os.environ.get(env, "") for name, env in self.entry.headers_env.items()}

    def client(self) -> httpx.AsyncClient:
        if self._client is None:  # made on first use, on the loop that uses it
            self._client = make_client(
                self._guard,
                timeout=self._timeout,
                connect_timeout=CONNECT_TIMEOUT,
                max_connections=100,
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def run(self, value: Any, *, ctx: Context) -> None:
        """POST the sub-request; relay what the endpoint answers (a cancel closes it)."""
        entry = self.entry
        body = {"task_id": ctx.task_id, "index": ctx.index, "input": value}
        status: int | None = None  # known once the endpoint answered: a stream may break after
        try:
            async with self.client().stream(
                "POST", entry.url, json=body, headers=self.headers()
            ) as response:
                status = response.status_code
                if not 200 <= status < 300:
                    text = (await response.aread()).decode("utf-8", "replace")
                    error = _failure(entry, f"{entry.url} answered HTTP {status}", status)
                    error.details["body"] = text[:ERROR_BODY_LIMIT]
                    raise error
                kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if kind == "application/x-ndjson":
                    await self._relay(ndjson_lines(response.aiter_text()), ctx, status)
                elif kind == "text/event-stream":
                    await self._relay(sse_data(response.aiter_text()), ctx, status)
                else:
                    try:
                        answer = json.loads(await response.aread())
                    except ValueError:
                        raise _failure(entry, f"{entry.url} answered no JSON", status) from None
                    await ctx.output(answer)
        except UnsafeUrl as exc:
            raise _failure(entry, f"{entry.url} is refused: {exc}", None) from None
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise _failure(entry, f"{entry.url} failed: {reason}", status) from None

    async def _relay(self, lines: AsyncIterator[str], ctx: Context, status: int) -> None:
        entry = self.entry
        async for line in lines:
            try:
                message = decode_work_message(line)
            except InvalidWorkerMessage as exc:
                raise _failure(entry, f"{entry.url} sent a bad message: {exc}", status) from None
            if isinstance(message, WorkProgress):
                await ctx.progress(message.progress, message.message)
            elif isinstance(message, WorkOutput):
                await ctx.output(message.output)
            elif isinstance(message, WorkDelta):
                try:
                    await ctx.append(message.output, message.field, message.append)
                except (TypeError, ValueError) as exc:
                    raise _failure(entry, f"{entry.url} sent a bad delta: {exc}", status) from None
            elif isinstance(message, WorkCompleted):
                ctx.set_result(message.data)
                return
            elif isinstance(message, WorkFailed):
                error = message.error
                raise SkillError(error.message, code=error.code, details=error.details)
        raise _failure(entry, f"{entry.url} ended its stream without completed or failed", status)


class HttpSkills:
    """Every ``[[http_skills]]`` entry, grouped into apps."""

    def __init__(self, entries: Sequence[HttpSkillConfig], *, default_timeout: float) -> None:
        self._skills = [_HttpSkill(entry, default_timeout) for entry in entries]
        for i, skill in enumerate(self._skills):
            try:
                skill._guard.parse(skill.entry.url)
            except UnsafeUrl as exc:
                field = f"http_skills[{i}].url"
                raise ValidationError(
                    f"invalid `{field}`: {exc}", details={"field": field, "constraint": str(exc)}
                ) from None
            check_schema(_declaration(skill.entry))

    def apps(self) -> list[App]:
        apps: dict[str, App] = {}
        for skill in self._skills:
            entry = skill.entry
            app = apps.setdefault(entry.app, App(entry.app))
            if entry.skill in app.skills:
                raise ValueError(f"http_skills: {entry.app}/{entry.skill} is declared twice")
            app.skills[entry.skill] = declared_skill(entry, skill.run)
        return list(apps.values())

    async def close(self) -> None:
        for skill in self._skills:
            await skill.close()


def _declaration(entry: HttpSkillConfig) -> SkillDeclaration:
    return SkillDeclaration(app=entry.app, skill=entry.skill, input_schema=entry.input_schema)
