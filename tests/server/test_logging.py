"""Logs: no query string in any line, console text on a terminal, JSON otherwise."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from websockets.sync.client import connect

from skillwire.server._logging import ConsoleFormatter, JsonFormatter, configure_logging
from tests.conftest import ADMIN_KEY, free_port, scaled
from tests.server.serving import serve_process


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes the root logger: put it back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_query_string_reaches_a_log_line() -> None:
    """A WebSocket ?ticket= and a key put in a URL's query appear in no log line."""
    port = free_port()
    env = {"SKILLWIRE_LOG_FORMAT": "json", "SKILLWIRE_DRAIN_PERIOD": "0"}
    process, url = serve_process(env, port=port, stderr=subprocess.PIPE)
    try:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        with httpx.Client(base_url=url, timeout=scaled(10)) as client:
            ticket = client.post("/api/v1/tickets", headers=headers).json()["ticket"]
            client.get("/api/v1/apps", params={"api_key": "sk_put_in_the_url"})
        with connect(
            f"ws://127.0.0.1:{port}/api/v1/ws?ticket={ticket}",
            subprotocols=["skillwire.v1"],  # type: ignore[list-item]
        ) as conn:
            conn.send(json.dumps({"op": "ping", "ref": "p"}))
            conn.recv(timeout=scaled(10))
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=scaled(20))
    log = stderr.decode()
    assert "/api/v1/ws" in log  # the WebSocket was logged...
    assert ticket not in log  # ...without its ticket
    assert "sk_put_in_the_url" not in log
    assert "?" not in log


@pytest.mark.usefixtures("restore_logging")
def test_auto_format_is_console_text_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """log_format "auto" writes readable console lines when stderr is a terminal."""
    monkeypatch.setattr(sys, "stderr", _Terminal())
    configure_logging("info", "auto")
    [handler] = logging.getLogger().handlers
    assert isinstance(handler.formatter, ConsoleFormatter)


@pytest.mark.usefixtures("restore_logging")
def test_auto_format_is_json_when_stderr_is_not_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """log_format "auto" writes one JSON object a line when stderr is a pipe or a file."""
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    configure_logging("info", "auto")
    [handler] = logging.getLogger().handlers
    assert isinstance(handler.formatter, JsonFormatter)
    logging.getLogger("skillwire.test").info("GET %s", "/api/v1/ws?ticket=tkt_x")
    assert json.loads(stderr.getvalue())["message"] == "GET /api/v1/ws"
