"""``[llm.upstreams.NAME]``: what loads, and the one-line error for a bad entry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from skillwire.protocol import ValidationError
from skillwire.server import load_config


def _load(
    upstream: dict[str, Any], name: str = "local", environ: dict[str, str] | None = None
) -> Any:
    return load_config(environ=environ or {}, overrides={"llm": {"upstreams": {name: upstream}}})


def test_an_upstream_loads_with_defaults() -> None:
    """base_url alone: every model (*), 600 s timeout, 3 retries, no key."""
    config = _load({"base_url": "http://127.0.0.1:11434/v1"})
    upstream = config.llm.upstreams["local"]
    assert (upstream.models, upstream.timeout, upstream.max_retries) == (["*"], 600.0, 3)
    assert upstream.api_key_env is None


def test_environment_variables_nest_into_an_upstream() -> None:
    """SKILLWIRE_LLM__UPSTREAMS__NAME__FIELD sets an upstream's field."""
    config = load_config(
        environ={
            "SKILLWIRE_LLM__UPSTREAMS__VLLM__BASE_URL": "http://127.0.0.1:8001/v1",
            "SKILLWIRE_LLM__UPSTREAMS__VLLM__MODELS": "meta-llama/Llama-3.1-8B,qwen",
        }
    )
    assert config.llm.upstreams["vllm"].models == ["meta-llama/Llama-3.1-8B", "qwen"]


@pytest.mark.parametrize(
    ("name", "entry", "field"),
    [
        ("bad/name", {"base_url": "http://h/v1"}, "llm.upstreams.bad/name"),
        ("local", {"base_url": "ftp://h/v1"}, "llm.upstreams.local.base_url"),
        ("local", {"base_url": "http:///v1"}, "llm.upstreams.local.base_url"),
        ("local", {"base_url": "http://h/v1", "models": []}, "llm.upstreams.local.models"),
        ("local", {"base_url": "http://h/v1", "models": ["*", "a"]}, "llm.upstreams.local.models"),
        (
            "local",
            {"base_url": "http://h/v1", "api_key_env": "NOPE"},
            "llm.upstreams.local.api_key_env",
        ),
    ],
)
def test_bad_entries_name_their_field(name: str, entry: dict[str, Any], field: str) -> None:
    """Each bad entry is refused at load, naming the field at fault."""
    with pytest.raises(ValidationError) as caught:
        _load(entry, name)
    assert caught.value.details["field"] == field
    assert field in caught.value.message


def test_type_errors_name_the_field() -> None:
    """A missing base_url or a negative timeout is a validation error naming the path."""
    with pytest.raises(ValidationError, match=r"llm\.upstreams\.local"):
        _load({"models": ["a"]})
    with pytest.raises(ValidationError, match="timeout"):
        _load({"base_url": "http://h/v1", "timeout": -1})


def test_key_variable_present_loads() -> None:
    """api_key_env naming a set variable loads."""
    config = _load({"base_url": "http://h/v1", "api_key_env": "K"}, environ={"K": "sk-x"})
    assert config.llm.upstreams["local"].api_key_env == "K"


def test_serve_refuses_a_bad_upstream_in_one_line(tmp_path: Path) -> None:
    """`skillwire serve` with a bad upstream prints one line naming it and exits 2."""
    config = tmp_path / "skillwire.toml"
    config.write_text('[llm.upstreams.local]\nbase_url = "nope"\n')
    done = subprocess.run(
        [sys.executable, "-m", "skillwire.server._cli", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "llm.upstreams.local.base_url" in lines[0]
