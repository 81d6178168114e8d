"""protocol/ is sans-I/O: importing every ``skillwire.protocol`` module loads no I/O library."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest

FORBIDDEN = ["asyncio", "anyio", "starlette", "redis", "httpx", "socket", "websockets", "uvicorn"]

# Runs in a fresh interpreter, so nothing the test suite imported can hide a violation. It
# imports the package, then each module in turn, and records which forbidden modules each
# import brought in (so a failure names the protocol module to blame), plus any that the
# interpreter had loaded before the first import.
PROBE = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys

    forbidden = set(sys.argv[1].split(","))

    def loaded():
        return {name for name in sys.modules if name.split(".")[0] in forbidden}

    report = {"before": sorted(loaded()), "modules": [], "culprits": {}}
    seen = loaded()
    package = importlib.import_module("skillwire.protocol")
    names = ["skillwire.protocol"] + [
        info.name for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
    ]
    for name in names:
        importlib.import_module(name)
        report["modules"].append(name)
        new = loaded() - seen
        if new:
            report["culprits"][name] = sorted(new)
        seen |= new
    report["after"] = sorted(loaded())
    print(json.dumps(report))
    """
)


def run_probe(forbidden: list[str]) -> dict[str, Any]:
    """The probe's findings, from a fresh interpreter (``-I``: no user site, no PYTHON*)."""
    result = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, ",".join(forbidden)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return run_probe(FORBIDDEN)


def test_protocol_imports_no_io_library(report: dict[str, Any]) -> None:
    """No module of skillwire.protocol pulls in asyncio, anyio, starlette, redis, httpx, etc."""
    assert report["culprits"] == {}, report
    assert report["before"] == [], report
    assert report["after"] == [], report


def test_probe_sees_every_protocol_module(report: dict[str, Any]) -> None:
    """The probe walks every module of the package (so the check above is not vacuous)."""
    assert set(report["modules"]) >= {
        "skillwire.protocol",
        "skillwire.protocol._codec",
        "skillwire.protocol._errors",
        "skillwire.protocol._framing",
        "skillwire.protocol._ids",
        "skillwire.protocol._lifecycle",
        "skillwire.protocol._models",
        "skillwire.protocol._timefmt",
        "skillwire.protocol._ws",
    }


def test_probe_names_the_importing_module() -> None:
    """The probe catches a module the package does import (hmac) and blames the importer."""
    canary = run_probe(["hmac"])
    assert canary["after"] == ["hmac"]
    assert canary["culprits"] == {"skillwire.protocol": ["hmac"]}
