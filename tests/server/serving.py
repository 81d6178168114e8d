"""A real ``skillwire serve`` process on a free port, for tests of signals and logs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import ADMIN_KEY, free_port, scaled

SKILLWIRE = str(Path(sys.executable).with_name("skillwire"))


def serve_process(
    env_extra: dict[str, str], port: int | None = None, stderr: int = subprocess.DEVNULL
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``skillwire serve`` with the admin test key; return it once /healthz answers."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLWIRE_")}
    env.update(
        {
            "SKILLWIRE_API_KEY": ADMIN_KEY,
            "SKILLWIRE_HEARTBEAT_INTERVAL": "0.5",
            "SKILLWIRE_LOG_FORMAT": "json",
            **env_extra,
        }
    )
    process = subprocess.Popen(
        [SKILLWIRE, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + scaled(20)
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError("server did not start")
        time.sleep(0.1)
