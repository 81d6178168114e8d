"""Authentication and authorisation: keys, roles, scopes and browser tickets."""

from __future__ import annotations

from ._keys import KeyStore, digest
from ._permissions import DEFAULT_ROLES, Permission, resolve_roles
from ._principal import Principal

__all__ = [
    "DEFAULT_ROLES",
    "KeyStore",
    "Permission",
    "Principal",
    "digest",
    "resolve_roles",
]
