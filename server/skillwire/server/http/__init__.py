"""The HTTP layer: routes, middleware, errors."""

from __future__ import annotations

from ._app import create_app

__all__ = ["create_app"]
