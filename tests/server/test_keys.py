"""The key store, roles and scopes, without a server."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path
from typing import Any

import pytest

from skillwire.protocol import ValidationError
from skillwire.server import load_config
from skillwire.server.auth import (
    DEFAULT_ROLES,
    KeyStore,
    Permission,
    Principal,
    check_roles,
    resolve_roles,
)


def store(environ: dict[str, str] | None = None, **settings: Any) -> KeyStore:
    return KeyStore.from_config(load_config(environ={}, overrides=settings), environ or {})


def test_key_sha256_is_matched_by_its_secret() -> None:
    """A key stored as a SHA-256 hex digest authenticates the secret it hashes."""
    digest = hashlib.sha256(b"sk_hashed").hexdigest()
    keys = store(keys=[{"name": "ci", "key_sha256": digest, "role": "user"}])
    principal = keys.lookup("sk_hashed")
    assert principal is not None
    assert principal.name == "ci"
    assert principal.role == "user"
    assert keys.lookup(digest) is None  # the digest itself is not a key
    assert keys.generated_key is None


def test_key_env_reads_the_secret_from_the_environment() -> None:
    """key_env names the environment variable that holds the secret."""
    keys = store(
        {"MY_KEY": "sk_from_env"}, keys=[{"name": "svc", "key_env": "MY_KEY", "role": "admin"}]
    )
    principal = keys.lookup("sk_from_env")
    assert principal is not None
    assert principal.name == "svc"
    assert principal.is_admin
    assert keys.lookup("MY_KEY") is None


def test_key_env_that_is_unset_is_an_error() -> None:
    """A key_env whose variable is missing or empty fails at start, naming the key."""
    with pytest.raises(ValueError, match=r"svc.*MISSING"):
        store(keys=[{"name": "svc", "key_env": "MISSING"}])
    with pytest.raises(ValueError, match="EMPTY"):
        store({"EMPTY": ""}, keys=[{"name": "svc", "key_env": "EMPTY"}])


def test_inline_key_works() -> None:
    """key = "..." (dev only) authenticates that key."""
    keys = store(keys=[{"name": "dev1", "key": "sk_inline"}])
    principal = keys.lookup("sk_inline")
    assert principal is not None
    assert principal.name == "dev1"
    assert principal.role == "user"  # the default role


def test_key_without_secret_is_an_error() -> None:
    """A [[keys]] entry with none of key_sha256, key_env, key fails at start."""
    with pytest.raises(ValueError, match="nokey"):
        store(keys=[{"name": "nokey", "role": "user"}])


def test_unknown_role_is_an_error() -> None:
    """A key with a role that is neither a default nor under [roles] fails at start."""
    with pytest.raises(ValidationError, match="unknown role 'boss'"):
        store(keys=[{"name": "x", "key": "k", "role": "boss"}])


def test_api_key_is_the_admin_principal() -> None:
    """api_key (SKILLWIRE_API_KEY) defines principal "admin" with every permission."""
    keys = store(api_key="sk_admin")
    principal = keys.lookup("sk_admin")
    assert principal is not None
    assert principal.name == "admin"
    assert principal.permissions == frozenset(Permission)
    assert keys.generated_key is None


def test_no_key_configured_generates_a_dev_admin_key(tmp_path: Path) -> None:
    """With no key at all, a random key for principal "dev" (role admin) is generated."""
    first = store(dev_key_file=str(tmp_path / "first"))
    second = store(dev_key_file=str(tmp_path / "second"))
    assert first.generated_key is not None
    assert second.generated_key is not None
    assert first.generated_key != second.generated_key
    assert len(first.generated_key) >= 32
    principal = first.lookup(first.generated_key)
    assert principal is not None
    assert (principal.name, principal.role) == ("dev", "admin")
    assert first.lookup(second.generated_key) is None


def test_the_dev_key_is_kept_in_its_file_across_restarts(tmp_path: Path) -> None:
    """The generated key is written once (0600) and read back at the next start."""
    path = tmp_path / "state" / "dev_key"
    first = store(dev_key_file=str(path))
    second = store(dev_key_file=str(path))
    assert first.generated_key is not None
    assert second.generated_key == first.generated_key
    assert second.generated_key_file == path
    assert path.read_text().strip() == first.generated_key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_dev_key_file_that_cannot_be_written_gives_a_key_for_this_run(tmp_path: Path) -> None:
    """When the dev key file cannot be created, a key for this run only is generated."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    keys = store(dev_key_file=str(blocker / "dev_key"))
    assert keys.generated_key is not None
    assert keys.generated_key_file is None
    assert keys.lookup(keys.generated_key) is not None


def test_wrong_key_is_none() -> None:
    """An unknown, empty or near-miss key finds no principal."""
    keys = store(api_key="sk_admin", keys=[{"name": "u", "key": "sk_user"}])
    for presented in ["", "sk_admi", "sk_admin ", "SK_ADMIN", "sk_user\x00"]:
        assert keys.lookup(presented) is None


def test_several_keys_each_find_their_principal() -> None:
    """Each configured key maps to its own principal."""
    keys = store(
        api_key="sk_a",
        keys=[{"name": "u1", "key": "sk_1"}, {"name": "u2", "key": "sk_2", "role": "admin"}],
    )
    assert [keys.lookup(k).name for k in ("sk_a", "sk_1", "sk_2")] == ["admin", "u1", "u2"]  # type: ignore[union-attr]
    assert keys.by_name("u2") is not None
    assert keys.by_name("nobody") is None


def test_default_roles() -> None:
    """admin has every permission; user has call, read, cancel and docs."""
    assert DEFAULT_ROLES["admin"] == frozenset(Permission)
    assert DEFAULT_ROLES["user"] == {"call", "read", "cancel", "docs"}


def test_configured_role_gets_exactly_its_permissions() -> None:
    """A role under [roles] gets exactly the listed permissions; others keep their defaults."""
    roles = resolve_roles({"user": ["read"], "ops": ["metrics", "read"]})
    assert roles["user"] == {Permission.READ}
    assert roles["ops"] == {Permission.METRICS, Permission.READ}
    assert roles["admin"] == frozenset(Permission)


def test_unknown_permission_is_an_error() -> None:
    """A role listing a permission that does not exist fails, listing the valid ones."""
    with pytest.raises(ValidationError, match=r"fly.*call, read") as caught:
        resolve_roles({"pilot": ["fly"]})
    assert caught.value.details["field"] == "roles.pilot"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"keys": [{"name": "k", "key": "s", "role": "wizard"}]}, "keys[0].role"),
        ({"roles": {"ops": ["read", "nosuch"]}}, "roles.ops"),
    ],
)
def test_check_roles_names_the_field_of_an_unknown_role_or_permission(
    overrides: dict[str, Any], field: str
) -> None:
    """A key's unknown role or a role's unknown permission is a ValidationError naming the
    field, from check_roles as from KeyStore.from_config (which calls it)."""
    config = load_config(environ={}, overrides=overrides)
    with pytest.raises(ValidationError) as caught:
        check_roles(config)
    assert caught.value.details["field"] == field
    with pytest.raises(ValidationError):
        KeyStore.from_config(config, {})


def test_role_override_reaches_the_key() -> None:
    """A key's permissions follow its role as configured under [roles]."""
    keys = store(keys=[{"name": "u", "key": "sk_u"}], roles={"user": ["read", "docs"]})
    principal = keys.lookup("sk_u")
    assert principal is not None
    assert principal.has(Permission.READ)
    assert not principal.has(Permission.CALL)


@pytest.mark.parametrize(
    ("scopes", "target", "allowed"),
    [
        (None, ("any", "thing"), True),
        (["demo.echo"], ("demo", "echo"), True),
        (["demo.echo"], ("demo", "countdown"), False),
        (["demo.*"], ("demo", "countdown"), True),
        (["demo.*"], ("demox", "echo"), False),
        (["web.*", "videos.get_transcript"], ("videos", "get_transcript"), True),
        (["web.*", "videos.get_transcript"], ("videos", "upload"), False),
        ([], ("demo", "echo"), False),
    ],
)
def test_scopes_are_app_skill_globs(
    scopes: list[str] | None, target: tuple[str, str], allowed: bool
) -> None:
    """A key's scopes are app.skill globs; no scopes means every skill, [] means none."""
    principal = Principal(
        "p", "user", DEFAULT_ROLES["user"], None if scopes is None else tuple(scopes)
    )
    assert principal.may_call(*target) is allowed


def test_scopes_from_config_reach_the_principal() -> None:
    """scopes = [...] in a key's config limit what that principal may call."""
    keys = store(keys=[{"name": "s", "key": "sk_s", "scopes": ["demo.echo"]}])
    principal = keys.lookup("sk_s")
    assert principal is not None
    assert principal.may_call("demo", "echo")
    assert not principal.may_call("demo", "fail")


def test_visibility_is_owner_or_admin() -> None:
    """A principal sees its own tasks; an admin sees everyone's."""
    user = Principal("u", "user", DEFAULT_ROLES["user"])
    admin = Principal("a", "admin", DEFAULT_ROLES["admin"])
    assert user.may_see("u")
    assert not user.may_see("someone")
    assert admin.may_see("someone")
