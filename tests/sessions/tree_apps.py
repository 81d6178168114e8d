"""Skills that call skills, for the task-tree tests (also loaded by worker processes)."""

from __future__ import annotations

from typing import Any

from skillwire.protocol import SkillError
from skillwire.server import App, Context

tree = App("tree")


@tree.skill(mode="long")
async def parent(ctx: Context, app: str, skill: str, requests: list[dict[str, Any]]) -> Any:
    """Call ``app/skill`` and output the child's id, status and outputs."""
    child = await ctx.call(app, skill, requests)
    return {"child": child.task_id, "status": child.status, "previews": child.previews}


@tree.skill(mode="long")
async def iterate(ctx: Context, n: int = 3) -> Any:
    """Iterate a countdown child's events; output their types."""
    types = [event.type async for event in ctx.call("demo", "countdown", [{"n": n, "interval": 0}])]
    return {"types": types}


@tree.skill(mode="long")
async def nest(ctx: Context, depth: int) -> Any:
    """Call itself ``depth`` more times; output how deep it got, or the refusal."""
    if depth == 0:
        return {"reached": True}
    try:
        child = await ctx.call("tree", "nest", [{"depth": depth - 1}])
    except SkillError as exc:
        return {"refused": exc.code, "message": exc.message}
    return {"child": child.task_id, "status": child.status, "below": child.previews}


@tree.skill(mode="long")
async def forbidden(ctx: Context) -> Any:
    """Call demo/echo, which a tree-only key may not."""
    try:
        await ctx.call("demo", "echo", [{"text": "x"}])
    except SkillError as exc:
        return {"refused": exc.code}
    return {"refused": None}
