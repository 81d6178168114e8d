"""The LLM bridge: OpenAI-compatible upstreams as the ``llm/chat`` skill and a ``/v1/`` front door.

It depends on the engine (an app like ``demo``); the engine knows nothing of LLMs.
"""

from __future__ import annotations

from ._bridge import LlmBridge, Route
from ._chat import ChatInput, ChatMessage, build_app
from ._metrics import LlmMetrics
from ._upstream import Upstream, UpstreamFailure

__all__ = [
    "ChatInput",
    "ChatMessage",
    "LlmBridge",
    "LlmMetrics",
    "Route",
    "Upstream",
    "UpstreamFailure",
    "build_app",
]
