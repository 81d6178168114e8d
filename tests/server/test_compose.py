"""docker-compose.yml cannot run here (no Docker engine): check it against the real CLI instead."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
SKILLWIRE = str(Path(sys.executable).with_name("skillwire"))


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


@functools.cache  # one process per command: two gateways share `serve`'s, two workers `worker`'s
def _help(*command: str) -> str:
    return subprocess.run(
        [SKILLWIRE, *command, "--help"], capture_output=True, text=True, check=True
    ).stdout


def test_topology_is_redis_two_gateways_two_workers_and_a_proxy() -> None:
    """The compose file has redis, two `serve --no-workers`, two `worker` and a proxy."""
    services = _compose()["services"]
    commands = {name: service.get("command", []) for name, service in services.items()}
    gateways = [n for n, c in commands.items() if c[:2] == ["skillwire", "serve"]]
    workers = [n for n, c in commands.items() if c[:2] == ["skillwire", "worker"]]
    assert len(gateways) == 2 and all("--no-workers" in commands[g] for g in gateways)
    assert len(workers) == 2
    assert "redis" in services and "proxy" in services
    for name in [*gateways, "redis", "proxy"]:
        assert "healthcheck" in services[name], name


def test_every_command_and_option_exists_in_the_cli() -> None:
    """Each skillwire command and flag used in the compose file is one the CLI accepts."""
    for service in _compose()["services"].values():
        command = service.get("command", [])
        if command[:1] != ["skillwire"]:
            continue
        usage = _help(command[1])
        for word in command[2:]:
            if word.startswith("--"):
                assert word in usage, (command, word)


def test_environment_names_are_config_keys() -> None:
    """Every SKILLWIRE_ variable in the compose file maps to a configuration key."""
    from skillwire.server._config import _field_type

    environment = _compose()["x-skillwire"]["environment"]
    for name in environment:
        if not name.startswith("SKILLWIRE_"):
            continue
        path = name.removeprefix("SKILLWIRE_").lower().split("__")
        assert _field_type(path) is not None, name


def test_proxy_config_streams_unbuffered_and_upgrades_websockets() -> None:
    """nginx: buffering off, WebSocket upgrade headers, read timeout above the heartbeat."""
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "proxy_buffering off;" in text
    assert "proxy_set_header Upgrade $http_upgrade;" in text
    timeout = int(text.split("proxy_read_timeout", 1)[1].split("s;", 1)[0])
    assert timeout > 2 * 15
