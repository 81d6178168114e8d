"""The ``skillwire`` command, run as a real subprocess on a free port."""

from __future__ import annotations

import logging
import os
import queue
import re
import resource
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from skillwire.server._cli import main
from tests.conftest import scaled

ROOT = Path(__file__).resolve().parents[2]
SKILLWIRE = Path(sys.executable).with_name("skillwire")
LISTENING = re.compile(r"^skillwire listening on (http://127\.0\.0\.1:(\d+))$")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without SKILLWIRE_ settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLWIRE_")}
    env["PYTHONPATH"] = str(ROOT / "tests" / "server")
    env["SKILLWIRE_DRAIN_PERIOD"] = "0"  # these tests do not watch the drain: stop at once
    env.update(extra)
    return env


class Serve:
    """A ``skillwire serve`` process and the lines it printed on stdout."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        wrapper: Sequence[str] = (),
    ) -> None:
        self.process = subprocess.Popen(
            [*wrapper, str(SKILLWIRE), "serve", "--port", "0", *args],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for_url(self) -> str:
        """Read stdout until the "listening" line; return the base URL it names."""
        while True:
            try:
                line = self.lines.get(timeout=scaled(20))
            except queue.Empty:
                raise AssertionError(f"no listening line; stdout so far: {self.seen}") from None
            if line is None:
                raise AssertionError(f"skillwire exited early: {self.seen}, {self.stop()}")
            self.seen.append(line)
            match = LISTENING.match(line)
            if match:
                return match.group(1)

    def stop(self) -> str:
        """Terminate the process started here (by its PID) and return its stderr."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            _, stderr = self.process.communicate(timeout=scaled(15))
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate()
        return stderr


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """In-process ``main()`` configures the root logger: put it back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def serve() -> Iterator[list[Serve]]:
    """Started ``skillwire serve`` processes; each is terminated after the test."""
    started: list[Serve] = []
    yield started
    for process in started:
        process.stop()


def test_serve_prints_a_generated_key_and_enforces_it(serve: list[Serve]) -> None:
    """With no key configured, serve prints "API key: ..." once, and only that key works."""
    proc = Serve([], clean_env())
    serve.append(proc)
    url = proc.wait_for_url()
    key_lines = [line for line in proc.seen if line.startswith("API key: ")]
    assert len(key_lines) == 1
    key = key_lines[0].removeprefix("API key: ")
    assert len(key) >= 32
    assert " " not in key
    with httpx.Client(base_url=url, timeout=scaled(10)) as client:
        anonymous = client.get("/api/v1/apps")
        wrong = client.get("/api/v1/apps", headers={"Authorization": "Bearer nope"})
        ok = client.get("/api/v1/apps", headers={"Authorization": f"Bearer {key}"})
        call = client.post(
            "/api/v1/apps/demo/echo",
            json={"requests": [{"text": "cli"}]},
            headers={"X-API-Key": key},
        )
        health = client.get("/health")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "UNAUTHORIZED"
    assert wrong.status_code == 401
    assert ok.status_code == 200
    assert [a["app"] for a in ok.json()["items"]] == ["demo"]
    assert call.json()["previews"] == [{"type": "text", "text": "cli"}]
    assert health.json() == {"status": "ok"}
    stderr = proc.stop()
    assert key not in stderr  # printed once on stdout, never logged
    assert [line for line in proc.seen if key in line] == key_lines


def test_the_dev_key_survives_a_restart(serve: list[Serve], tmp_path: Path) -> None:
    """A restarted serve prints (and enforces) the same dev key, naming the file it is kept in."""
    env = clean_env(XDG_STATE_HOME=str(tmp_path))
    keys = []
    for _ in range(2):
        proc = Serve([], env)
        serve.append(proc)
        url = proc.wait_for_url()
        [key_line] = [line for line in proc.seen if line.startswith("API key: ")]
        keys.append(key_line.removeprefix("API key: "))
        assert str(tmp_path / "skillwire" / "dev_key") in "\n".join(proc.seen)
        with httpx.Client(base_url=url, timeout=scaled(10)) as client:
            headers = {"Authorization": f"Bearer {keys[-1]}"}
            assert client.get("/api/v1/apps", headers=headers).status_code == 200
        proc.stop()
    assert keys[0] == keys[1]


def test_serve_with_env_key_prints_no_key(serve: list[Serve]) -> None:
    """With SKILLWIRE_API_KEY set, serve prints no key and that key is the admin key."""
    proc = Serve([], clean_env(SKILLWIRE_API_KEY="sk_cli_env"))
    serve.append(proc)
    url = proc.wait_for_url()
    assert not any(line.startswith("API key: ") for line in proc.seen)
    with httpx.Client(base_url=url, timeout=scaled(10)) as client:
        ok = client.get("/api/v1/tasks", headers={"X-API-Key": "sk_cli_env"})
    assert ok.status_code == 200
    assert "sk_cli_env" not in proc.stop()


def test_serve_loads_apps_from_config_and_flags(serve: list[Serve], tmp_path: Path) -> None:
    """--apps module:attr loads an app, --no-demo drops demo, --config supplies the keys."""
    config = tmp_path / "skillwire.toml"
    config.write_text(
        '[[keys]]\nname = "ci"\nkey = "sk_cli_file"\nrole = "user"\n', encoding="utf-8"
    )
    proc = Serve(
        ["--config", str(config), "--apps", "sample_apps:sample", "--no-demo"], clean_env()
    )
    serve.append(proc)
    url = proc.wait_for_url()
    assert not any(line.startswith("API key: ") for line in proc.seen)
    headers = {"Authorization": "Bearer sk_cli_file"}
    with httpx.Client(base_url=url, headers=headers, timeout=scaled(10)) as client:
        apps = client.get("/api/v1/apps").json()["items"]
        shout = client.post("/api/v1/apps/sample/shout", json={"requests": [{"text": "hi"}]})
        demo = client.post("/api/v1/apps/demo/echo", json={"requests": [{"text": "hi"}]})
    assert [a["app"] for a in apps] == ["sample"]
    assert shout.json()["previews"] == [{"type": "text", "text": "HI"}]
    assert demo.status_code == 404


@pytest.mark.usefixtures("restore_logging")
def test_bad_config_exits_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown key in the config file stops the command with exit code 2, naming it."""
    config = tmp_path / "bad.toml"
    config.write_text("colour = 'blue'\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--port", "0", "--config", str(config)])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert "configuration error" in err
    assert "colour" in err
    assert out == ""


@pytest.mark.usefixtures("restore_logging")
def test_missing_config_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A --config path that does not exist stops the command with exit code 2."""
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--config", str(tmp_path / "missing.toml")])
    assert exited.value.code == 2
    assert "missing.toml" in capsys.readouterr().err


@pytest.mark.usefixtures("restore_logging")
def test_bad_app_path_fails_to_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--apps naming something that is not an App stops the command with one line, exit 2."""
    monkeypatch.setenv("SKILLWIRE_API_KEY", "sk_x")
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--port", "0", "--apps", "tests.server.sample_apps:not_an_app"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "skillwire: cannot start: TypeError: tests.server.sample_apps:not_an_app is object,"
        " not a skillwire App"
    ]


@pytest.mark.usefixtures("restore_logging")
def test_an_app_module_that_does_not_exist_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--apps nosuch:app prints one line naming the missing module (no traceback), exit 2."""
    monkeypatch.setenv("SKILLWIRE_API_KEY", "sk_x")
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--port", "0", "--apps", "nosuch:app"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "skillwire: cannot start: ModuleNotFoundError: No module named 'nosuch'"
    ]


@pytest.mark.usefixtures("restore_logging")
def test_a_worker_whose_app_does_not_load_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """skillwire worker --apps nosuch:app prints one line and exits 2 before touching Redis."""
    monkeypatch.setenv("SKILLWIRE_BACKBONE", "redis")
    monkeypatch.setenv("SKILLWIRE_REDIS_URL", "redis://127.0.0.1:1/0")
    with pytest.raises(SystemExit) as exited:
        main(["worker", "--apps", "nosuch:app"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "skillwire: cannot start: ModuleNotFoundError: No module named 'nosuch'"
    ]


@pytest.mark.usefixtures("restore_logging")
def test_an_unknown_permission_in_roles_is_a_configuration_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A [roles] entry with an unknown permission is one configuration-error line, exit 2."""
    config = tmp_path / "roles.toml"
    config.write_text('[roles]\nops = ["read", "nosuch"]\n', encoding="utf-8")
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--port", "0", "--config", str(config)])
    assert exited.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("skillwire: configuration error: invalid `roles.ops`:")
    assert "'nosuch'" in line


def test_a_port_in_use_is_one_line_and_exit_1() -> None:
    """serve on a port that is taken prints one line saying so and exits 1, no traceback."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(SKILLWIRE), "serve", "--port", str(port)],
            env=clean_env(SKILLWIRE_API_KEY="sk_x"),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=scaled(30),
            check=False,
        )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"skillwire: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_help_lists_the_serve_options(capsys: pytest.CaptureFixture[str]) -> None:
    """skillwire serve --help documents --host, --port, --config, --apps and --no-demo."""
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for option in ("--host", "--port", "--config", "--apps", "--no-demo", "--no-workers"):
        assert option in out


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    """skillwire without a command prints usage and exits 2."""
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
    assert "usage: skillwire" in capsys.readouterr().err


def test_serve_lifts_a_low_open_file_limit_towards_max_connections(serve: list[Serve]) -> None:
    """Started with a soft limit of 256 open files, serve raises it to max_connections + 256."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    proc = Serve(
        [],
        clean_env(SKILLWIRE_API_KEY="sk_x", SKILLWIRE_MAX_CONNECTIONS="1000"),
        wrapper=["sh", "-c", 'ulimit -Sn 256 && exec "$0" "$@"'],
    )
    serve.append(proc)
    proc.wait_for_url()
    limits = Path(f"/proc/{proc.process.pid}/limits").read_text()
    [line] = [line for line in limits.splitlines() if line.startswith("Max open files")]
    assert int(line.split()[3]) == min(1256, hard)
