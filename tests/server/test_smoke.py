"""A first end-to-end check of the REST surface."""

from __future__ import annotations

from tests.conftest import RunningServer


def test_quick_call_completes_inline(server: RunningServer) -> None:
    """A quick echo call answers 200 with the finished task."""
    with server.client() as client:
        response = client.post("/api/v1/apps/demo/echo", json={"requests": [{"text": "hi"}]})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "completed"
    assert body["previews"] == [{"type": "text", "text": "hi"}]
