"""Configuration: a TOML file, SKILLWIRE_ environment variables and overrides, in that order."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any

import pytest

from skillwire.protocol import ValidationError
from skillwire.server import Config, load_config
from skillwire.server.auth import KeyStore, Permission


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "skillwire.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    """With no file, environment or overrides, the documented defaults hold."""
    config = load_config(environ={})
    assert config == Config()
    assert (config.host, config.port, config.backbone) == ("127.0.0.1", 8000, "memory")
    assert config.heartbeat_interval == 15.0
    assert config.retention == 86400.0
    assert config.max_body == 1024 * 1024
    assert config.max_requests == 5
    assert config.max_parallel == 5
    assert config.quick_wait == 10.0
    assert config.demo is True
    assert config.workers is True
    assert config.api_key is None
    assert config.keys == []
    assert config.webhooks.urls == []
    assert config.webhooks.retry_delays == [5.0, 30.0, 300.0]
    assert config.cors.allow_origins == []


def test_toml_file(tmp_path: Path) -> None:
    """Every kind of setting comes from the TOML file: scalars, tables, arrays of tables."""
    digest = hashlib.sha256(b"sk_file").hexdigest()
    path = write(
        tmp_path,
        f"""
port = 9001
retention = 120
max_body = 2048
demo = false
apps = ["tests.server.sample_apps:sample"]
skill_timeouts = {{ "demo.countdown" = 3.5 }}

[webhooks]
secret = "whsec_abc"
urls = ["https://example.org/a"]

[cors]
allow_origins = ["https://app.example"]

[[keys]]
name = "frontend"
key_sha256 = "{digest}"
role = "user"
scopes = ["demo.*", "web.search"]
rate_limit = "100/minute"

[roles]
user = ["call", "read"]
""",
    )
    config = load_config(path, environ={})
    assert config.port == 9001
    assert config.retention == 120.0
    assert config.max_body == 2048
    assert config.demo is False
    assert config.apps == ["tests.server.sample_apps:sample"]
    assert config.skill_timeouts == {"demo.countdown": 3.5}
    assert config.webhooks.secret == "whsec_abc"
    assert config.webhooks.urls == ["https://example.org/a"]
    assert config.cors.allow_origins == ["https://app.example"]
    (key,) = config.keys
    assert (key.name, key.role, key.key_sha256) == ("frontend", "user", digest)
    assert key.scopes == ["demo.*", "web.search"]
    assert key.rate_limit == "100/minute"
    assert config.roles == {"user": ["call", "read"]}
    principal = KeyStore.from_config(config, {}).lookup("sk_file")
    assert principal is not None
    assert principal.permissions == {Permission.CALL, Permission.READ}
    assert principal.scopes == ("demo.*", "web.search")


def test_environment_variables() -> None:
    """SKILLWIRE_ variables set keys: numbers, booleans, __ nesting and comma lists."""
    config = load_config(
        environ={
            "SKILLWIRE_API_KEY": "sk_env",
            "SKILLWIRE_PORT": "8123",
            "SKILLWIRE_RETENTION": "2.5",
            "SKILLWIRE_HEARTBEAT_INTERVAL": "3",
            "SKILLWIRE_MAX_BODY": "4096",
            "SKILLWIRE_BACKBONE": "redis",
            "SKILLWIRE_REDIS_URL": "redis://127.0.0.1:7777/1",
            "SKILLWIRE_RATE_LIMIT": "0",
            "SKILLWIRE_DEMO": "false",
            "SKILLWIRE_WEBHOOKS__SECRET": "whsec_env",
            "SKILLWIRE_WEBHOOKS__ALLOW_PRIVATE": "true",
            "SKILLWIRE_WEBHOOKS__URLS": "https://a.example/h, https://b.example/h,",
            "SKILLWIRE_WEBHOOKS__RETRY_DELAYS": "1,2.5, 10",
            "SKILLWIRE_CORS__ALLOW_ORIGINS": "https://x.example",
            "SKILLWIRE_APPS": "a.b:c,d.e:f",
        }
    )
    assert config.api_key == "sk_env"
    assert config.port == 8123
    assert config.retention == 2.5
    assert config.heartbeat_interval == 3.0
    assert config.max_body == 4096
    assert config.backbone == "redis"
    assert config.redis_url == "redis://127.0.0.1:7777/1"
    assert config.rate_limit == "0"
    assert config.demo is False
    assert config.webhooks.secret == "whsec_env"
    assert config.webhooks.allow_private is True
    assert config.webhooks.urls == ["https://a.example/h", "https://b.example/h"]
    assert config.webhooks.retry_delays == [1.0, 2.5, 10.0]
    assert config.cors.allow_origins == ["https://x.example"]
    assert config.apps == ["a.b:c", "d.e:f"]


def test_environment_names_are_case_insensitive_after_the_prefix() -> None:
    """SKILLWIRE_Port works like SKILLWIRE_PORT; other prefixes and unknown names are ignored."""
    config = load_config(
        environ={
            "SKILLWIRE_Port": "8124",
            "SKILLWIRE_TESTS_TIMEOUT_FACTOR": "3",
            "SKILLWIRE_NOT_A_KEY": "x",
            "PORT": "1",
            "XSKILLWIRE_PORT": "2",
        }
    )
    assert config.port == 8124


def test_precedence_file_then_env_then_overrides(tmp_path: Path) -> None:
    """The environment beats the file, overrides beat both, and tables merge key by key."""
    path = write(
        tmp_path,
        """
port = 1000
retention = 10
max_body = 111
[webhooks]
secret = "from-file"
urls = ["https://file.example"]
timeout = 4
""",
    )
    environ = {
        "SKILLWIRE_PORT": "2000",
        "SKILLWIRE_RETENTION": "20",
        "SKILLWIRE_WEBHOOKS__SECRET": "from-env",
    }
    config = load_config(
        path, environ=environ, overrides={"port": 3000, "webhooks": {"timeout": 9}}
    )
    assert config.port == 3000  # overrides > env > file
    assert config.retention == 20.0  # env > file
    assert config.max_body == 111  # file only
    assert config.webhooks.secret == "from-env"
    assert config.webhooks.urls == ["https://file.example"]  # the file's other keys stay
    assert config.webhooks.timeout == 9.0


def test_unknown_key_in_file_is_a_clear_error(tmp_path: Path) -> None:
    """A key the configuration does not have fails, naming the key."""
    path = write(tmp_path, "prot = 8000\n")
    with pytest.raises(ValidationError, match="prot"):
        load_config(path, environ={})


def test_unknown_nested_key_is_a_clear_error(tmp_path: Path) -> None:
    """An unknown key inside a table or a [[keys]] entry fails, naming where it is."""
    with pytest.raises(ValidationError, match="secrte") as nested:
        load_config(write(tmp_path, '[webhooks]\nsecrte = "x"\n'), environ={})
    assert "webhooks" in str(nested.value)
    with pytest.raises(ValidationError, match="kee") as in_keys:
        load_config(write(tmp_path, '[[keys]]\nname = "a"\nkee = "x"\n'), environ={})
    assert "keys[0]" in str(in_keys.value)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('port = "eighty"', "port"),
        ('backbone = "postgres"', "backbone"),
        ("demo = 3", "demo"),
        ("[[keys]]\nrole = 'user'", "name"),
    ],
)
def test_wrong_type_in_file_is_a_clear_error(tmp_path: Path, text: str, field: str) -> None:
    """A value of the wrong type fails, naming the key."""
    with pytest.raises(ValidationError, match=field):
        load_config(write(tmp_path, text + "\n"), environ={})


def test_bad_environment_value_is_a_clear_error() -> None:
    """An environment value that does not convert fails, naming the key."""
    with pytest.raises(ValidationError, match="port"):
        load_config(environ={"SKILLWIRE_PORT": "eighty"})
    with pytest.raises(ValidationError, match="retry_delays"):
        load_config(environ={"SKILLWIRE_WEBHOOKS__RETRY_DELAYS": "1,soon"})


def test_malformed_toml_is_an_error(tmp_path: Path) -> None:
    """A file that is not TOML fails to load."""
    with pytest.raises(tomllib.TOMLDecodeError):
        load_config(write(tmp_path, "port = = 1\n"), environ={})


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    """A --config path that does not exist fails to load."""
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.toml", environ={})


def test_keys_from_file_and_environment(tmp_path: Path) -> None:
    """key_sha256, key_env and key entries of the file all authenticate, with SKILLWIRE_API_KEY."""
    digest = hashlib.sha256(b"sk_one").hexdigest()
    path = write(
        tmp_path,
        f"""
[[keys]]
name = "one"
key_sha256 = "{digest}"

[[keys]]
name = "two"
key_env = "TWO_KEY"
role = "admin"

[[keys]]
name = "three"
key = "sk_three"
scopes = ["demo.echo"]
""",
    )
    environ = {"SKILLWIRE_API_KEY": "sk_root", "TWO_KEY": "sk_two"}
    config = load_config(path, environ=environ)
    keys = KeyStore.from_config(config, environ)
    presented = ("sk_one", "sk_two", "sk_three", "sk_root")
    names = [getattr(keys.lookup(k), "name", None) for k in presented]
    assert names == ["one", "two", "three", "admin"]
    assert keys.generated_key is None


def test_roles_in_file_override_only_the_named_roles(tmp_path: Path) -> None:
    """[roles] replaces the permissions of the roles it names and adds new ones."""
    path = write(
        tmp_path,
        """
[roles]
user = ["read"]
auditor = ["read", "metrics"]

[[keys]]
name = "u"
key = "sk_u"

[[keys]]
name = "a"
key = "sk_a"
role = "auditor"

[[keys]]
name = "root"
key = "sk_root"
role = "admin"
""",
    )
    keys = KeyStore.from_config(load_config(path, environ={}), {})
    assert keys.lookup("sk_u").permissions == {Permission.READ}  # type: ignore[union-attr]
    assert keys.lookup("sk_a").permissions == {Permission.READ, Permission.METRICS}  # type: ignore[union-attr]
    assert keys.lookup("sk_root").permissions == frozenset(Permission)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"rate_limit": "lots"}, "rate_limit"),
        ({"role_rate_limits": {"user": "5/fortnight"}}, "role_rate_limits.user"),
        ({"provider_limits": {"acme.ask": "x"}}, "provider_limits.acme.ask"),
        ({"keys": [{"name": "k", "key": "s", "rate_limit": "often"}]}, "keys[0].rate_limit"),
    ],
)
def test_bad_limits_are_configuration_errors(overrides: dict[str, Any], field: str) -> None:
    """Limit strings that do not parse fail at load, naming the key (roles: test_keys.py)."""
    with pytest.raises(ValidationError) as caught:
        load_config(environ={}, overrides=overrides)
    assert caught.value.details["field"] == field


def test_task_output_bounds_from_file_and_environment(tmp_path: Path) -> None:
    """[task] max_outputs and max_output_bytes default to 1,000 and 1 MiB, come from the file
    or SKILLWIRE_TASK__*, and must be at least 1; max_log_bytes defaults to 16 MiB."""
    defaults = load_config(environ={})
    assert (defaults.task.max_outputs, defaults.task.max_output_bytes) == (1_000, 1024 * 1024)
    assert defaults.max_log_bytes == 16 * 1024 * 1024
    path = tmp_path / "skillwire.toml"
    path.write_text("max_log_bytes = 4096\n[task]\nmax_outputs = 10\n")
    config = load_config(path, environ={"SKILLWIRE_TASK__MAX_OUTPUT_BYTES": "2048"})
    assert (config.task.max_outputs, config.task.max_output_bytes) == (10, 2048)
    assert config.max_log_bytes == 4096
    with pytest.raises(ValidationError) as info:
        load_config(environ={"SKILLWIRE_TASK__MAX_OUTPUTS": "0"})
    assert info.value.details["field"] == "task.max_outputs"
