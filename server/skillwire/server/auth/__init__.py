"""Authentication and authorisation: keys, roles, scopes and browser tickets."""

from __future__ import annotations

from ._credentials import (
    Tickets,
    authenticate,
    authenticate_key,
    credentials_of,
    offers_credentials,
    require,
)
from ._keys import KeyStore, check_roles, digest
from ._permissions import DEFAULT_ROLES, Permission, resolve_roles
from ._principal import Principal

__all__ = [
    "DEFAULT_ROLES",
    "KeyStore",
    "Permission",
    "Principal",
    "Tickets",
    "authenticate",
    "authenticate_key",
    "check_roles",
    "credentials_of",
    "digest",
    "offers_credentials",
    "require",
    "resolve_roles",
]
