"""Permissions and the roles that grant them."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from skillwire.protocol import ValidationError

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
    """Defaults, with each role named in the config getting exactly the permissions listed;
    a permission that does not exist is a ValidationError naming ``roles.<name>``."""
    allowed = [p.value for p in Permission]
    roles = dict(DEFAULT_ROLES)
    for name, permissions in configured.items():
        unknown = sorted(set(permissions) - set(allowed))
        if unknown:
            raise ValidationError(
                f"invalid `roles.{name}`: unknown permission {unknown[0]!r}; "
                f"permissions are: {', '.join(allowed)}",
                details={"field": f"roles.{name}", "constraint": f"each one of {allowed}"},
            )
        roles[name] = frozenset(Permission(p) for p in permissions)
    return roles
