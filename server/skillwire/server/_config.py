"""Configuration: a TOML file, then ``SKILLWIRE_`` environment variables, then CLI flags.

Each environment variable names a key of the file: ``SKILLWIRE_HEARTBEAT_INTERVAL`` is
``heartbeat_interval``, and ``__`` nests (``SKILLWIRE_WEBHOOKS__SECRET`` is ``[webhooks]
secret``). Lists in the environment are comma-separated.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
from limits import parse as parse_limit

from skillwire.protocol import (
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_MAX_OUTPUTS,
    ValidationError,
    validate,
)

__all__ = [
    "Config",
    "CorsConfig",
    "KeyConfig",
    "LlmConfig",
    "TaskConfig",
    "UpstreamConfig",
    "WebhooksConfig",
    "load_config",
]

ENV_PREFIX = "SKILLWIRE_"


class KeyConfig(msgspec.Struct, forbid_unknown_fields=True):
    """One API key: the secret comes from a digest, an environment variable or (dev) inline."""

    name: str
    role: str = "user"
    key_sha256: str | None = None
    key_env: str | None = None
    key: str | None = None
    scopes: list[str] | None = None
    rate_limit: str | None = None


Seconds = Annotated[float, msgspec.Meta(ge=0)]
PositiveSeconds = Annotated[float, msgspec.Meta(gt=0)]


class WebhooksConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[webhooks]``: signing, receivers, the SSRF guard and the retry schedule."""

    secret: str | None = None  # whsec_<base64>; unset: one derived per deployment, printed
    secrets: dict[str, str] = {}  # a receiver URL -> its own whsec_ secret (file only)
    urls: list[str] = []
    allow_private: bool = False
    allow_hosts: list[str] = []
    retry_delays: list[Seconds] = msgspec.field(default_factory=lambda: [5.0, 30.0, 300.0])
    timeout: PositiveSeconds = 10.0  # one attempt, from connecting to the end of the response
    connect_timeout: PositiveSeconds = 5.0
    concurrency: Annotated[int, msgspec.Meta(ge=1)] = 16  # attempts in flight per process
    poll_interval: PositiveSeconds = 1.0  # how often to look for deliveries due elsewhere


class TaskConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[task]``: how much output a Task holds (the log keeps every event regardless)."""

    max_outputs: Annotated[int, msgspec.Meta(ge=1)] = DEFAULT_MAX_OUTPUTS  # per request
    max_output_bytes: Annotated[int, msgspec.Meta(ge=1)] = DEFAULT_MAX_OUTPUT_BYTES  # per task


class CorsConfig(msgspec.Struct, forbid_unknown_fields=True):
    allow_origins: list[str] = []


class HttpSkillConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[[http_skills]]``: a skill served by an HTTP endpoint (docs/workers.md)."""

    app: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_-]{1,64}$")]
    skill: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_-]{1,64}$")]
    url: str
    mode: Literal["quick", "long"] = "quick"
    description: str = ""
    input_schema: dict[str, Any] = msgspec.field(default_factory=lambda: {"type": "object"})
    timeout: Annotated[float, msgspec.Meta(gt=0)] | None = None
    max_requests: Annotated[int, msgspec.Meta(ge=1)] | None = None
    # header name -> the environment variable holding its value (secrets stay out of the file)
    headers_env: dict[str, str] = {}
    # private and loopback addresses (an operator's own network); metadata addresses never
    allow_private: bool = False


class UpstreamConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[llm.upstreams.NAME]``: one OpenAI-compatible Chat Completions server."""

    base_url: str  # up to and including /v1: http://127.0.0.1:11434/v1
    models: list[str] = msgspec.field(default_factory=lambda: ["*"])  # ["*"]: what /models lists
    api_key_env: str | None = None  # the environment variable holding its key (none: no key)
    timeout: PositiveSeconds = 600.0  # the longest wait for the upstream's next bytes
    max_retries: Annotated[int, msgspec.Meta(ge=0, le=100)] = 3  # on 429 and 503
    connect_timeout: PositiveSeconds = 10.0
    max_connections: Annotated[int, msgspec.Meta(ge=1)] = 1000  # pooled, kept alive


class LlmConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[llm]``: the LLM bridge (app ``llm``), on when at least one upstream is configured."""

    upstreams: dict[str, UpstreamConfig] = {}


class Config(msgspec.Struct, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    dev_key_file: str | None = None  # unset: $XDG_STATE_HOME/skillwire/dev_key
    backbone: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    heartbeat_interval: float = 15.0
    retention: float = 86400.0
    max_body: int = 1024 * 1024
    rate_limit: str = "600/minute"
    role_rate_limits: dict[str, str] = {}
    provider_limits: dict[str, str] = {}
    quick_wait: float = 10.0
    max_wait: float = 60.0
    max_requests: int = 5
    max_parallel: int = 5
    max_call_depth: Annotated[int, msgspec.Meta(ge=1)] = 8  # ctx.call: tasks in one tree's chain
    concurrency: int = 64
    work_lease: float = 30.0
    work_max_deliveries: int = 5
    shutdown_grace: float = 10.0
    drain_period: Seconds = 3.0  # on SIGTERM: keep listening, answering 503, this long
    header_timeout: PositiveSeconds = 10.0  # a request's headers must arrive within this
    keepalive_timeout: PositiveSeconds = 5.0  # an idle kept-alive connection closes after this
    max_header_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 64 * 1024  # more: 431
    max_connections: Annotated[int, msgspec.Meta(ge=1)] = 10_000  # per process; more: 503
    skill_timeout: float = 300.0
    max_events: int = 10_000
    max_log_bytes: Annotated[int, msgspec.Meta(ge=1)] = 16 * 1024 * 1024  # memory backbone
    send_queue: int = 1024
    ws_max_message: int = 1024 * 1024
    ws_auth_timeout: float = 10.0
    ws_compression: bool = False  # permessage-deflate: costs zlib state per connection
    demo: bool = True
    workers: bool = True
    apps: list[str] = []
    log_level: str = "info"
    log_format: Literal["auto", "json", "text"] = "auto"  # auto: text on a terminal
    keys: list[KeyConfig] = []
    roles: dict[str, list[str]] = {}
    skill_timeouts: dict[str, float] = {}
    webhooks: WebhooksConfig = msgspec.field(default_factory=WebhooksConfig)
    task: TaskConfig = msgspec.field(default_factory=TaskConfig)
    cors: CorsConfig = msgspec.field(default_factory=CorsConfig)
    http_skills: list[HttpSkillConfig] = []
    llm: LlmConfig = msgspec.field(default_factory=LlmConfig)


def _set_path(tree: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        child = tree.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValidationError(f"configuration key {part!r} is not a table")
        tree = child
    tree[path[-1]] = value


def _field_type(path: list[str]) -> Any:
    """The msgspec type info of a config key path, or None when no such key exists."""
    current: Any = msgspec.inspect.type_info(Config)
    for part in path:
        if isinstance(current, msgspec.inspect.DictType):
            current = current.value_type  # a table with free keys: [roles], [skill_timeouts]
            continue
        if not isinstance(current, msgspec.inspect.StructType):
            return None
        match = next((f for f in current.fields if f.name == part), None)
        if match is None:
            return None
        current = match.type
    return current


def _env_value(path: list[str], text: str) -> Any:
    """Environment strings become lists where the key is a list; msgspec converts the rest."""
    kind = _field_type(path)
    if isinstance(kind, msgspec.inspect.ListType):
        return [item.strip() for item in text.split(",") if item.strip()]
    return text


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        if _field_type(path) is None:
            continue  # not one of ours (e.g. SKILLWIRE_TESTS_TIMEOUT_FACTOR)
        _set_path(tree, path, _env_value(path, value))
    return tree


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """The effective configuration: file < environment < ``overrides`` (CLI flags)."""
    data: dict[str, Any] = {}
    if path is not None:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    environ = os.environ if environ is None else environ
    data = _merge(data, _env_overrides(environ))
    if overrides:
        data = _merge(data, overrides)
    _check_upstream_types(data)
    # Non-strict: environment values arrive as strings ("15", "true").
    config = validate(data, Config, strict=False)
    _check_semantics(config)
    _check_llm_keys(config.llm, environ)
    return config


def _check_limit(field: str, text: str | None) -> None:
    if text is None or text.strip() in ("", "0"):
        return
    try:
        parse_limit(text)
    except ValueError as exc:
        raise ValidationError(
            f'invalid `{field}`: {text!r} is not a rate limit like "600/minute"',
            details={"field": field, "constraint": str(exc)},
        ) from None


def _check_semantics(config: Config) -> None:
    """What the types cannot say: limit strings parse. (That roles list known permissions and
    keys name known roles is the key store's to check: ``auth.check_roles``.)"""
    _check_limit("rate_limit", config.rate_limit)
    for role, text in config.role_rate_limits.items():
        _check_limit(f"role_rate_limits.{role}", text)
    for name, text in config.provider_limits.items():
        _check_limit(f"provider_limits.{name}", text)
    _check_llm(config.llm)
    for i, key in enumerate(config.keys):
        _check_limit(f"keys[{i}].rate_limit", key.rate_limit)


_UPSTREAM_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _bad_upstream(field: str, message: str) -> ValidationError:
    return ValidationError(
        f"invalid `llm.upstreams.{field}`: {message}",
        details={"field": f"llm.upstreams.{field}", "constraint": message},
    )


def _check_llm(llm: LlmConfig) -> None:
    """Each upstream: a name usable in ``<upstream>/<model>``, an http(s) URL, models."""
    for name, upstream in llm.upstreams.items():
        if not _UPSTREAM_NAME.match(name):
            raise _bad_upstream(name, "the name must match [A-Za-z0-9_.-]{1,64} (no '/')")
        url = urlsplit(upstream.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise _bad_upstream(
                f"{name}.base_url", f"{upstream.base_url!r} is not an http(s) URL with a host"
            )
        if not upstream.models or any(not m.strip() for m in upstream.models):
            raise _bad_upstream(f"{name}.models", 'list model names, or ["*"]')
        if "*" in upstream.models and len(upstream.models) > 1:
            raise _bad_upstream(f"{name}.models", '"*" stands alone: it means every model')


def _check_llm_keys(llm: LlmConfig, environ: Mapping[str, str]) -> None:
    """An upstream whose key variable is unset would answer 401 to every call: say so now."""
    for name, upstream in llm.upstreams.items():
        if upstream.api_key_env is not None and not environ.get(upstream.api_key_env):
            raise _bad_upstream(
                f"{name}.api_key_env",
                f"the environment variable {upstream.api_key_env} is not set",
            )


def _check_upstream_types(data: dict[str, Any]) -> None:
    """Each upstream on its own first, so that an error names it (``llm.upstreams.local``)."""
    llm = data.get("llm")
    upstreams = llm.get("upstreams") if isinstance(llm, dict) else None
    if not isinstance(upstreams, dict):
        return
    for name, entry in upstreams.items():
        validate(entry, UpstreamConfig, prefix=f"llm.upstreams.{name}", strict=False)
