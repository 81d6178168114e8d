"""The Redis backbone (``SKILLWIRE_BACKBONE=redis``)."""

from __future__ import annotations

from ._backbone import RedisBackbone

__all__ = ["RedisBackbone"]
