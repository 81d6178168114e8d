"""The `skillwire worker` process's life: what it opens, it closes at shutdown."""

from __future__ import annotations

import asyncio

import pytest

from skillwire.server import _cli, load_config
from skillwire.server.httpskills import HttpSkills

from .helpers import TEXT_SCHEMA


async def test_the_worker_process_closes_its_http_skills_at_shutdown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stopping `skillwire worker` closes the HTTP skills (their HTTP clients) it built."""
    closed: list[HttpSkills] = []
    close = HttpSkills.close

    async def spy(self: HttpSkills) -> None:
        closed.append(self)
        await close(self)

    monkeypatch.setattr(HttpSkills, "close", spy)
    monkeypatch.setattr(_cli, "_tune_gc", lambda: None)  # not this test process's collector
    entry = {
        "app": "hooks",
        "skill": "upper",
        "url": "http://127.0.0.1:9/json",
        "input_schema": TEXT_SCHEMA,
        "allow_private": True,
    }
    config = load_config(environ={}, overrides={"http_skills": [entry]})
    stop = asyncio.Event()
    stop.set()  # start, then stop at once
    await asyncio.wait_for(_cli._work(config, [], stop), 30)
    assert len(closed) == 1
