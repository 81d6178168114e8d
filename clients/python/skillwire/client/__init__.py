"""skillwire.client: the Python client (the full client arrives with the clients issue)."""

from __future__ import annotations

from skillwire.protocol import SkillwireError

__all__ = ["SkillwireError"]
