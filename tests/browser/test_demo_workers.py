"""The demo page lists the remote workers connected to the gateway (admin keys)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.conftest import ADMIN_KEY, USER_KEY, RunningServer, scaled

from .helpers import DemoPage


@pytest.fixture
def worker(server: RunningServer) -> Iterator[dict[str, Any]]:
    """A worker (the admin key has `work` too) that answers heartbeats from a thread."""
    with connect(
        f"{server.ws_url}/api/v1/workers/ws",
        additional_headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        open_timeout=scaled(10),
    ) as conn:
        yield from _serve(conn)


def _serve(conn: ClientConnection) -> Iterator[dict[str, Any]]:
    hello = {
        "op": "hello",
        "name": "page-worker",
        "skills": [{"app": "ext", "skill": "shout", "input_schema": {"type": "object"}}],
    }
    conn.send(json.dumps(hello))
    welcome = json.loads(conn.recv(timeout=scaled(10)))

    def answer_heartbeats() -> None:
        try:
            for frame in conn:
                if '"heartbeat"' in str(frame):
                    conn.send('{"op": "ping"}')
        except Exception:  # the connection closed: the thread ends
            return

    thread = threading.Thread(target=answer_heartbeats, daemon=True)
    thread.start()
    yield welcome
    conn.close()
    thread.join(scaled(5))


def test_the_page_lists_connected_workers(demo: DemoPage, worker: dict[str, Any]) -> None:
    """With an admin key the page shows the worker, and marks its skill as remote."""
    demo.open()
    item = demo.page.locator(f'#workers li[data-worker-id="{worker["worker_id"]}"]')
    item.wait_for()
    assert "page-worker" in item.inner_text() and "ext/shout" in item.inner_text()
    assert demo.page.locator("#skill option", has_text="ext/shout (remote)").count() == 1


def test_the_workers_list_stays_hidden_for_users(demo: DemoPage, worker: dict[str, Any]) -> None:
    """A user key cannot list workers: the section stays hidden, the skills still load."""
    demo.open(USER_KEY)
    demo.page.locator("#call-section").wait_for()
    assert demo.page.locator("#workers-section").is_hidden()
