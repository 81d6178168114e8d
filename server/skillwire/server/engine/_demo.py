"""The built-in ``demo`` app of API.md: echo, countdown and fail."""

from __future__ import annotations

import asyncio
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
