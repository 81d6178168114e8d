"""Skills for the multi-process tests, loaded by `--apps tests.multiprocess.sample_apps:lab`."""

from __future__ import annotations

import asyncio
import os
import time

from skillwire.server import App, Context

lab = App("lab", "test skills for the multi-process suite")


@lab.skill(mode="long")
async def sleeper(seconds: float, marker: str) -> dict[str, str]:
    """Sleep; if interrupted, write the time and pid to `marker` (the test reads it)."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        # Written beside and renamed into place: the test polls for the file, and must never
        # see it before its text is there.
        partial = f"{marker}.partial"
        with open(partial, "w") as fh:
            fh.write(f"{time.time()} {os.getpid()}")
        os.replace(partial, marker)
        raise
    return {"slept": str(seconds)}


@lab.skill(mode="long")
async def sleepers(ctx: Context, n: int, seconds: float, marker: str) -> list[str]:
    """Call ``n`` sleeper children at once (any worker may run each); each writes
    ``<marker><i>`` when interrupted. Outputs the children's statuses."""
    children = [
        ctx.call("lab", "sleeper", [{"seconds": seconds, "marker": f"{marker}{i}"}])
        for i in range(n)
    ]
    done = await asyncio.gather(*children)
    return [task.status for task in done]
