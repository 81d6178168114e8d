"""The built-in ``demo`` app of API.md: echo, countdown, stream and fail."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec

from skillwire.protocol import SkillError

from ._app import App
from ._context import Context

__all__ = ["demo"]

demo = App("demo", "Built-in demonstration skills")


@demo.skill(mode="quick", description="Echo each text back as one output.")
async def echo(text: str, fail: bool = False) -> dict[str, Any]:
    if fail:
        raise SkillError(f"failed on purpose: {text}")
    return {"type": "text", "text": text}


@demo.skill(mode="long", description="Count from 1 to n, one tick per interval.")
async def countdown(
    ctx: Context,
    n: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 5,
    interval: Annotated[float, msgspec.Meta(ge=0, le=60)] = 0.2,
) -> AsyncIterator[dict[str, Any]]:
    for i in range(1, n + 1):
        if interval:
            await asyncio.sleep(interval)
        await ctx.progress(i / n, f"tick {i} of {n}")
        yield {"type": "tick", "i": i}


@demo.skill(mode="quick", description="Always fail with the given message.")
async def fail(message: str) -> None:
    raise SkillError(message)


PARAGRAPH = (
    "skillwire streams the work of AI skills to whoever follows it. An answer that an agent "
    "writes token by token is one output that grows: every reader sees it typed live, and a "
    "reader who reloads the page, changes networks or joins late gets the text so far in one "
    "event, then the rest of it, without a word missing or repeated. This paragraph is typed "
    "by the demo/stream skill, word by word, at the rate you ask for."
)
_WORD = re.compile(r"(?<=\s)(?=\S)")  # before each word that follows whitespace


@demo.skill(mode="long", description="Type a text word by word as one streamed output.")
async def stream(
    ctx: Context,
    text: Annotated[str, msgspec.Meta(max_length=100_000)] = PARAGRAPH,
    words_per_second: Annotated[float, msgspec.Meta(ge=1, le=1000)] = 20,
) -> None:
    # Each piece is a word with the whitespace after it: joined, they are `text` exactly.
    words = _WORD.split(text)
    started = time.monotonic()
    async with ctx.stream({"type": "text", "text": ""}) as out:
        for i, word in enumerate(words):
            # On a schedule, not a sleep per word: a slow append does not slow the rate down.
            delay = started + i / words_per_second - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await out.append(word)
