"""A tiny app for the tests that load apps by ``module:attr`` (CLI ``--apps``, ``apps=``)."""

from __future__ import annotations

from typing import Any

from skillwire.server import App

sample = App("sample", "A sample app loaded by path")


@sample.skill(description="Shout the text back.")
async def shout(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text.upper()}


not_an_app = object()
