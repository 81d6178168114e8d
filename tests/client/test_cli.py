"""The skillwire-client command, run as a subprocess against a real server."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ADMIN_KEY, RunningServer, free_port, scaled

COMMAND = str(Path(sys.executable).with_name("skillwire-client"))


def run(
    server: RunningServer | None,
    *args: str,
    key: str | None = ADMIN_KEY,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script with the server in its environment, output piped."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SKILLWIRE_")}
    if server is not None:
        environ["SKILLWIRE_URL"] = server.url
    if key is not None:
        environ["SKILLWIRE_API_KEY"] = key
    environ.update(env or {})
    return subprocess.run(
        [COMMAND, *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=scaled(30),
        check=False,
    )


def lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line]


def test_apps_prints_one_skill_per_line(shared_server: RunningServer) -> None:
    """`apps` piped prints each skill as one JSON line."""
    result = run(shared_server, "apps")
    assert result.returncode == 0, result.stderr
    skills = lines(result.stdout)
    assert {(s["app"], s["skill"]) for s in skills} >= {("demo", "echo"), ("demo", "countdown")}


def test_url_and_key_options_override_the_environment(shared_server: RunningServer) -> None:
    """--url and --key win over SKILLWIRE_URL and SKILLWIRE_API_KEY."""
    env = {"SKILLWIRE_URL": f"http://127.0.0.1:{free_port()}", "SKILLWIRE_API_KEY": "wrong"}
    result = run(
        None, "--url", shared_server.url, "--key", ADMIN_KEY, "skill", "demo", "echo", env=env
    )
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout)[0]["skill"] == "echo"


def test_call_prints_the_task_and_exits_zero(shared_server: RunningServer) -> None:
    """`call` prints the finished Task on one line; exit 0 when it completed."""
    result = run(shared_server, "call", "demo", "echo", '{"text": "a"}', '{"text": "b"}')
    assert result.returncode == 0, result.stderr
    (task,) = lines(result.stdout)
    assert task["status"] == "completed"
    assert [p["text"] for p in task["previews"]] == ["a", "b"]


@pytest.mark.parametrize(
    ("requests", "status"),
    [
        (['{"text": "ok"}', '{"text": "no", "fail": true}'], "partial"),
        (['{"text": "no", "fail": true}'], "failed"),
    ],
)
def test_call_exits_one_when_the_task_fails(
    shared_server: RunningServer, requests: list[str], status: str
) -> None:
    """A task that ends partial or failed gives exit status 1."""
    result = run(shared_server, "call", "demo", "echo", *requests)
    assert result.returncode == 1
    assert lines(result.stdout)[0]["status"] == status


@pytest.mark.parametrize("transport", ["auto", "ws", "sse", "ndjson"])
def test_call_stream_prints_every_event(shared_server: RunningServer, transport: str) -> None:
    """`call --stream` piped prints every event as a JSON line, seq 1..last, then exits 0."""
    result = run(
        shared_server,
        "call",
        "demo",
        "countdown",
        '{"n": 20, "interval": 0.02}',
        "--stream",
        "--transport",
        transport,
    )
    assert result.returncode == 0, result.stderr
    events = lines(result.stdout)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "task.completed"
    assert result.stderr == ""


def test_call_stream_of_a_failing_skill_exits_one(shared_server: RunningServer) -> None:
    """`call --stream` exits 1 when the streamed task fails."""
    result = run(shared_server, "call", "demo", "fail", '{"message": "boom"}', "--stream")
    assert result.returncode == 1
    assert lines(result.stdout)[-1]["type"] == "task.failed"


def test_task_tasks_cancel_and_events(shared_server: RunningServer) -> None:
    """`task`, `tasks`, `cancel` and `events` over one long task; cancelled exits 1."""
    started = run(
        shared_server, "call", "demo", "countdown", '{"n": 1000, "interval": 0.05}', "--wait", "0"
    )
    assert started.returncode == 0, started.stderr
    task_id = lines(started.stdout)[0]["task_id"]

    shown = run(shared_server, "task", task_id)
    assert shown.returncode == 0
    assert lines(shown.stdout)[0]["status"] in ("queued", "running")

    listed = run(shared_server, "tasks", "--skill", "countdown", "--limit", "1000")
    assert listed.returncode == 0
    assert task_id in {t["task_id"] for t in lines(listed.stdout)}

    cancelled = run(shared_server, "cancel", task_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert lines(cancelled.stdout)[0]["status"] == "cancelled"

    after = run(shared_server, "task", task_id, "--wait", "5")
    assert after.returncode == 1
    events = run(shared_server, "events", task_id, "--transport", "sse")
    assert events.returncode == 1
    assert lines(events.stdout)[-1]["type"] == "task.cancelled"

    every = run(shared_server, "tasks", "--all", "--status", "cancelled")
    assert task_id in {t["task_id"] for t in lines(every.stdout)}


def test_unknown_task_exits_three_with_the_error(shared_server: RunningServer) -> None:
    """A server error exits 3 and prints the error envelope on stderr."""
    result = run(shared_server, "task", "tsk_missing")
    assert result.returncode == 3
    assert result.stdout == ""
    error = json.loads(result.stderr)["error"]
    assert error["code"] == "NOT_FOUND"
    assert error["request_id"]


def test_bad_key_exits_three(shared_server: RunningServer) -> None:
    """A wrong key exits 3 with UNAUTHORIZED."""
    result = run(shared_server, "apps", key="sk_wrong")
    assert result.returncode == 3
    assert json.loads(result.stderr)["error"]["code"] == "UNAUTHORIZED"


def test_unreachable_server_exits_four() -> None:
    """No server listening exits 4 with a transport error that names the URL tried."""
    url = f"http://127.0.0.1:{free_port()}"
    result = run(None, "--url", url, "apps")
    assert result.returncode == 4
    error = json.loads(result.stderr)["error"]
    assert error["code"] == "TRANSPORT_ERROR"
    assert url in error["message"]
    assert error["details"]["url"] == url


@pytest.mark.parametrize(("key", "hint"), [(None, "no API key given"), ("sk_wrong", "refused")])
def test_unauthorized_names_the_key_option_and_variable(
    shared_server: RunningServer, key: str | None, hint: str
) -> None:
    """A missing or refused key says how to give one: --key or SKILLWIRE_API_KEY."""
    result = run(shared_server, "apps", key=key)
    assert result.returncode == 3
    error = json.loads(result.stderr)["error"]
    assert error["code"] == "UNAUTHORIZED"
    assert hint in error["message"]
    assert "--key" in error["message"] and "SKILLWIRE_API_KEY" in error["message"]


def test_events_cut_off_by_head_exits_quietly(shared_server: RunningServer) -> None:
    """`events ID | head -2`: the closed pipe ends the command with 141 and no traceback."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SKILLWIRE_")}
    environ.update(SKILLWIRE_URL=shared_server.url, SKILLWIRE_API_KEY=ADMIN_KEY)
    with shared_server.client() as client:
        response = client.post(
            "/api/v1/apps/demo/countdown",
            json={"requests": [{"n": 200, "interval": 0.01}]},
            headers={"Prefer": "respond-async"},
        )
    task_id = response.json()["task_id"]
    process = subprocess.Popen(
        [COMMAND, "events", task_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environ,
    )
    assert process.stdout is not None
    first = [process.stdout.readline() for _ in range(2)]
    process.stdout.close()  # what `head -2` does once it has its two lines
    _, err = process.communicate(timeout=scaled(30))
    assert all(json.loads(line)["task_id"] == task_id for line in first)
    assert b"Traceback" not in err and b"BrokenPipe" not in err
    assert process.returncode == 141


@pytest.mark.parametrize(
    "args", [["call", "demo", "echo", "not-json"], ["call", "demo", "echo", "[1]"], []]
)
def test_bad_usage_exits_two(args: list[str]) -> None:
    """Malformed arguments exit 2 (argparse)."""
    result = run(None, *args)
    assert result.returncode == 2


def run_on_a_terminal(server: RunningServer, *args: str) -> tuple[int, bytes, bytes]:
    """Run the command with stdout on a pseudo-terminal; its status, stdout and stderr."""
    controller, terminal = pty.openpty()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SKILLWIRE_")}
    environ.update(SKILLWIRE_URL=server.url, SKILLWIRE_API_KEY=ADMIN_KEY)
    try:
        process = subprocess.Popen(
            [COMMAND, *args], stdout=terminal, stderr=subprocess.PIPE, env=environ
        )
        os.close(terminal)
        _, err = process.communicate(timeout=scaled(30))
        out = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(controller)
    return process.returncode, out, err


def test_terminal_shows_progress_bars_on_stderr(shared_server: RunningServer) -> None:
    """With stdout on a terminal, --stream draws progress bars on stderr and shows the Task."""
    status, out, err = run_on_a_terminal(
        shared_server,
        "call",
        "demo",
        "countdown",
        '{"n": 10, "interval": 0.02}',
        '{"n": 5, "interval": 0.02}',
        "--stream",
    )
    assert status == 0
    text = err.decode()
    assert "demo/countdown" in text
    assert "[0]" in text
    assert "[1]" in text
    assert "100%" in text
    assert "completed" in text
    # A short summary on stdout, not the whole Task pretty-printed.
    shown = out.decode().replace("\r\n", "\n").strip().splitlines()
    assert len(shown) <= 3, shown
    assert "demo/countdown  completed  (2 completed)" in shown[0]
    assert "--json" in shown[-1]


def test_terminal_prints_streamed_text_as_it_grows(shared_server: RunningServer) -> None:
    """On a terminal, --stream of demo/stream prints the text itself on stdout (once, whole),
    not the Task's JSON; the bars still end on stderr."""
    text = "one two  three\tfour " * 10
    request = json.dumps({"text": text, "words_per_second": 200})
    status, out, err = run_on_a_terminal(
        shared_server, "call", "demo", "stream", request, "--stream"
    )
    assert status == 0
    printed = out.decode().replace("\r\n", "\n")  # the terminal turns newlines into CRLF
    assert printed == text + "\n"
    assert "completed" in err.decode()


def test_piped_stream_prints_the_deltas_as_events(shared_server: RunningServer) -> None:
    """Piped, --stream of demo/stream prints every event, request.delta included."""
    request = json.dumps({"text": "a b c", "words_per_second": 100})
    result = run(shared_server, "call", "demo", "stream", request, "--stream")
    assert result.returncode == 0, result.stderr
    events = lines(result.stdout)
    deltas = [e["data"]["append"] for e in events if e["type"] == "request.delta"]
    assert "".join(deltas) == "a b c"
    assert events[-1]["data"]["requests"][0]["output"] == [{"type": "text", "text": "a b c"}]
