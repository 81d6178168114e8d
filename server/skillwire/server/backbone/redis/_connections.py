"""How every Redis connection pool of a process is set up.

redis-py 8 speaks RESP3 and then turns on "maintenance notifications" (a Redis Enterprise
feature) by default; with them on, the pool no longer checks a pooled connection before
handing it out. After Redis restarts, every pooled connection is dead, and each one failed
its next command with "Connection closed by server" (503s for seconds after Redis was back).
With them off, the pool sees the closed socket and reconnects before use.
"""

from __future__ import annotations

from typing import Any

from redis.maint_notifications import MaintNotificationsConfig

__all__ = ["pool_options"]


def pool_options() -> dict[str, Any]:
    """Keyword arguments for every pool or client built from a URL."""
    return {"maint_notifications_config": MaintNotificationsConfig(enabled=False)}
