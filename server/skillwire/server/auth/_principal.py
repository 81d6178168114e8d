"""Who is calling: a key's name, its permissions and the skills it may call."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from skillwire.protocol import Forbidden

from ._permissions import Permission

__all__ = ["Principal"]


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str
    permissions: frozenset[Permission]
    scopes: tuple[str, ...] | None = None  # None: every skill
    rate_limit: str | None = None

    @property
    def is_admin(self) -> bool:
        return Permission.ADMIN in self.permissions

    def has(self, permission: Permission) -> bool:
        return permission in self.permissions

    def require(self, permission: Permission) -> Principal:
        """This principal, if it has ``permission``; else Forbidden (403) naming it."""
        if permission not in self.permissions:
            raise Forbidden(
                f"role {self.role!r} lacks the {permission.value!r} permission",
                details={"permission": permission.value},
            )
        return self

    def may_call(self, app: str, skill: str) -> bool:
        """True when the key's scopes (``web.*``, ``videos.get_transcript``) allow the skill."""
        if self.scopes is None:
            return True
        target = f"{app}.{skill}"
        return any(fnmatchcase(target, scope) for scope in self.scopes)

    def may_serve(self, app: str, skill: str) -> bool:
        """True when the key's scopes let a remote worker serve the skill: the same globs as
        for calls (``web.*``), or the app's bare name (``web``)."""
        return self.may_call(app, skill) or (self.scopes is not None and app in self.scopes)

    def may_see(self, owner: str) -> bool:
        return self.is_admin or owner == self.name
