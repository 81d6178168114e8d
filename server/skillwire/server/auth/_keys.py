"""The key store: which presented key is which principal.

Keys are kept as SHA-256 digests only. A presented key is hashed and compared against every
stored digest with ``hmac.compare_digest``, so neither the lookup's timing nor a log line
tells anything about a key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from skillwire.protocol import ValidationError

from .._config import Config
from ._dev_key import default_dev_key_file, load_or_create_dev_key, new_dev_key
from ._permissions import Permission, resolve_roles
from ._principal import Principal

__all__ = ["KeyStore", "check_roles", "digest"]

log = logging.getLogger("skillwire")


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def check_roles(config: Config) -> dict[str, frozenset[Permission]]:
    """The roles (the defaults, then ``[roles]``), once every permission they list exists and
    every key names one of them; else a ValidationError naming the field."""
    roles = resolve_roles(config.roles)
    for i, key in enumerate(config.keys):
        if key.role not in roles:
            raise ValidationError(
                f"invalid `keys[{i}].role`: unknown role {key.role!r}",
                details={"field": f"keys[{i}].role", "constraint": f"one of {sorted(roles)}"},
            )
    return roles


@dataclass(slots=True)
class _Entry:
    digest: bytes
    principal: Principal


class KeyStore:
    """Principals by key. ``generated_key`` is set when no key was configured at all.

    ``generated_key_file`` is where that key is kept across restarts (None: nowhere, the
    file could not be written, so the key lasts this run only).
    """

    def __init__(
        self,
        entries: list[_Entry],
        generated_key: str | None = None,
        generated_key_file: Path | None = None,
    ) -> None:
        self._entries = entries
        self.generated_key = generated_key
        self.generated_key_file = generated_key_file

    @classmethod
    def from_config(cls, config: Config, environ: Mapping[str, str] | None = None) -> KeyStore:
        env = os.environ if environ is None else environ
        roles = check_roles(config)
        entries: list[_Entry] = []

        def principal(
            name: str, role: str, scopes: list[str] | None, limit: str | None
        ) -> Principal:
            return Principal(
                name=name,
                role=role,
                permissions=roles[role],
                scopes=tuple(scopes) if scopes is not None else None,
                rate_limit=limit,
            )

        if config.api_key:
            entries.append(_Entry(digest(config.api_key), principal("admin", "admin", None, None)))
        for key in config.keys:
            if key.key_sha256:
                value = bytes.fromhex(key.key_sha256)
            elif key.key_env:
                secret = env.get(key.key_env)
                if not secret:
                    raise ValueError(
                        f"key {key.name!r}: environment variable {key.key_env} is empty"
                    )
                value = digest(secret)
            elif key.key:
                value = digest(key.key)
            else:
                raise ValueError(f"key {key.name!r}: set key_sha256, key_env or key")
            entries.append(_Entry(value, principal(key.name, key.role, key.scopes, key.rate_limit)))
        generated = None
        kept_in: Path | None = None
        if not entries:
            kept_in = Path(config.dev_key_file) if config.dev_key_file else default_dev_key_file()
            try:
                generated = load_or_create_dev_key(kept_in)
            except OSError as exc:
                log.warning("cannot keep the dev key (%s); it lasts this run only", exc)
                generated, kept_in = new_dev_key(), None
            entries.append(_Entry(digest(generated), principal("dev", "admin", None, None)))
        return cls(entries, generated, kept_in)

    def lookup(self, key: str) -> Principal | None:
        presented = digest(key)
        found: Principal | None = None
        for entry in self._entries:  # no early exit: the time taken does not depend on the match
            if hmac.compare_digest(presented, entry.digest) and found is None:
                found = entry.principal
        return found

    def by_name(self, name: str) -> Principal | None:
        """The principal a ticket was issued to (tickets store names, never keys)."""
        return next((e.principal for e in self._entries if e.principal.name == name), None)
