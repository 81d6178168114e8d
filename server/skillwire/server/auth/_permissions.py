"""Permissions and the roles that grant them."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

__all__ = ["DEFAULT_ROLES", "Permission", "resolve_roles"]


class Permission(StrEnum):
    CALL = "call"
    READ = "read"
    CANCEL = "cancel"
    ADMIN = "admin"
    METRICS = "metrics"
    DOCS = "docs"
    WORK = "work"  # serve skills as a remote worker (/api/v1/workers/ws)


DEFAULT_ROLES: dict[str, frozenset[Permission]] = {
    "admin": frozenset(Permission),
    "user": frozenset({Permission.CALL, Permission.READ, Permission.CANCEL, Permission.DOCS}),
    "worker": frozenset({Permission.WORK}),
}


def resolve_roles(configured: Mapping[str, list[str]]) -> dict[str, frozenset[Permission]]:
    """Defaults, with each role named in the config getting exactly the permissions listed."""
    roles = dict(DEFAULT_ROLES)
    for name, permissions in configured.items():
        try:
            roles[name] = frozenset(Permission(p) for p in permissions)
        except ValueError as exc:
            allowed = ", ".join(p.value for p in Permission)
            raise ValueError(f"role {name!r}: {exc}; permissions are: {allowed}") from exc
    return roles
