"""skillwire.server: the gateway, its engine and its backbones.

from skillwire.server import App, Context, create_app
"""

from __future__ import annotations

from skillwire.protocol import SkillError

from ._config import Config, load_config
from .engine import App, Context, StreamedOutput
from .http import create_app

__all__ = [
    "App",
    "Config",
    "Context",
    "SkillError",
    "StreamedOutput",
    "create_app",
    "load_config",
]
