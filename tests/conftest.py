"""Shared fixtures: a real uvicorn server on a free port, running a skillwire app."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from skillwire.server import App, create_app, load_config
from skillwire.server._cli import uvicorn_config

# The generated dev key is kept under $XDG_STATE_HOME: never in the real home during tests
# (servers started here and their subprocesses inherit this).
_STATE_HOME = tempfile.TemporaryDirectory(prefix="skillwire-tests-state-")
os.environ["XDG_STATE_HOME"] = _STATE_HOME.name

TIMEOUT_FACTOR = float(os.environ.get("SKILLWIRE_TESTS_TIMEOUT_FACTOR", "1"))

ADMIN_KEY = "sk_test_admin"
USER_KEY = "sk_test_user"
OTHER_KEY = "sk_test_other"
SCOPED_KEY = "sk_test_scoped"
READER_KEY = "sk_test_reader"

TEST_KEYS: list[dict[str, Any]] = [
    {"name": "user", "key": USER_KEY, "role": "user"},
    {"name": "other", "key": OTHER_KEY, "role": "user"},
    {"name": "scoped", "key": SCOPED_KEY, "role": "user", "scopes": ["demo.echo"]},
    {"name": "reader", "key": READER_KEY, "role": "reader"},
]
TEST_ROLES = {"reader": ["read"]}


def scaled(seconds: float) -> float:
    """A time limit stretched by SKILLWIRE_TESTS_TIMEOUT_FACTOR for slow machines."""
    return seconds * TIMEOUT_FACTOR


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class QuickServer(uvicorn.Server):
    """A uvicorn server that stops as soon as it is told: the suite starts hundreds.

    uvicorn notices ``should_exit`` on a 0.1 s tick, then sleeps 0.1 s before it waits for
    the connections, polled every 0.1 s: up to 0.3 s per server, 12 s of a 48 s run of the
    channel tests. Here ``stop()`` wakes the main loop at once and the connections are polled
    every 10 ms; the shutdown is otherwise uvicorn's (close the listeners, ask each
    connection to close, wait for them and their tasks, then the lifespan's shutdown).
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.wake = asyncio.Event()  # bound to the server's loop on its first wait

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864_000  # each wake-up as a whole second of ticks
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):  # the Date header stays fresh
                    await self.wake.wait()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for listener in self.servers:
            listener.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        while (self.server_state.connections or self.server_state.tasks) and not self.force_exit:
            await asyncio.sleep(0.01)
        for listener in self.servers:
            await listener.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()


@dataclass
class RunningServer:
    """A skillwire app served by uvicorn in a thread of this process."""

    url: str
    app: Any
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1)

    @property
    def runtime(self) -> Any:
        return self.app.state.skillwire

    def client(self, key: str | None = ADMIN_KEY, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=scaled(30), **kwargs)

    def async_client(self, key: str | None = ADMIN_KEY, **kwargs: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=scaled(30), **kwargs)

    def call_soon(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's event loop and return its result (for inspection)."""
        loop: asyncio.AbstractEventLoop = self.server_loop
        done = threading.Event()
        box: list[Any] = []

        def run() -> None:
            box.append(fn())
            done.set()

        loop.call_soon_threadsafe(run)
        done.wait(scaled(10))
        return box[0]

    server_loop: Any = None

    def stop(self) -> None:
        self.server.should_exit = True
        if isinstance(self.server, QuickServer) and self.server_loop is not None:
            with contextlib.suppress(RuntimeError):  # its loop already closed: it has stopped
                self.server_loop.call_soon_threadsafe(self.server.wake.set)
        self.thread.join(scaled(15))


def start_server(
    overrides: dict[str, Any] | None = None, apps: Sequence[App | str] = ()
) -> RunningServer:
    settings: dict[str, Any] = {
        "api_key": ADMIN_KEY,
        "keys": TEST_KEYS,
        "roles": TEST_ROLES,
        "rate_limit": "0",  # tests of limits set their own; polling loops must not trip one
        "shutdown_grace": 0.2,
        "host": "127.0.0.1",
        "port": free_port(),
    }
    settings.update(overrides or {})
    config = load_config(environ={}, overrides=settings)
    app = create_app(config, apps)
    server = QuickServer(uvicorn_config(app, config))  # as `skillwire serve` configures it
    running = RunningServer(f"http://127.0.0.1:{config.port}", app, server, None)  # type: ignore[arg-type]

    def run() -> None:
        loop = asyncio.new_event_loop()
        running.server_loop = loop
        loop.run_until_complete(server.serve())
        loop.close()

    running.thread = threading.Thread(target=run, name="uvicorn-test", daemon=True)
    running.thread.start()
    deadline = time.monotonic() + scaled(15)
    while not server.started:
        if time.monotonic() > deadline or not running.thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    return running


@dataclass
class RedisServer:
    """A redis-server this test session started on a free port (never the machine's own)."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    directory: str

    def flush(self) -> None:
        import redis

        client = redis.Redis(port=self.port)
        client.flushall()
        client.close()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(scaled(10))

    def start(self) -> None:
        """Start it again on the same port (after ``stop``), for outage tests."""
        self.process = _spawn_redis(self.port, self.directory)


def _spawn_redis(port: int, directory: str, *, persistent: bool = False) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (make test installs it when run as root)")
    durability = (
        ["--appendonly", "yes", "--appendfsync", "always"] if persistent else ["--appendonly", "no"]
    )
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            *durability,
            "--dir",
            directory,
            "--protected-mode",
            "yes",
            # As docs/deployment.md recommends: with Redis's default (32 MB hard) a test's burst
            # (2,000 outputs of 8 KB, then a terminal event carrying them all) can make Redis
            # drop the gateway's pub/sub connection; the gateway then replays from the log,
            # which waits for a slow reader, and a flow-control test no longer sees the cut it
            # checks for.
            "--client-output-buffer-limit",
            "pubsub 256mb 64mb 60",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + scaled(10)
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return process
        except OSError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError("redis-server did not start")
        time.sleep(0.05)


@contextlib.contextmanager
def own_redis_server(prefix: str = "skillwire-redis-") -> Iterator[RedisServer]:
    """A redis-server (no persistence) on a free port of 127.0.0.1, stopped and its directory
    removed on exit: the session's, or a module's own that its tests may stop and restart."""
    port = free_port()
    directory = tempfile.mkdtemp(prefix=prefix)
    server = RedisServer(
        f"redis://127.0.0.1:{port}/0", port, _spawn_redis(port, directory), directory
    )
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server for the whole session, on a free port of 127.0.0.1."""
    with own_redis_server() as server:
        yield server


BACKBONES = ["memory", "redis"]


@pytest.fixture(params=BACKBONES)
def backbone(request: pytest.FixtureRequest) -> str:
    """Each test that asks for a server runs once per backbone."""
    name: str = request.param
    return name


@pytest.fixture
def server_factory(
    request: pytest.FixtureRequest, backbone: str
) -> Iterator[Callable[..., RunningServer]]:
    """Start servers with config overrides, on this test's backbone; all stop after the test."""
    started: list[RunningServer] = []
    base: dict[str, Any] = {}
    if backbone == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        redis_server.flush()
        base = {"backbone": "redis", "redis_url": redis_server.url, "work_lease": 2.0}

    def factory(
        overrides: dict[str, Any] | None = None, apps: Sequence[App | str] = ()
    ) -> RunningServer:
        running = start_server({**base, **(overrides or {})}, apps)
        started.append(running)
        return running

    yield factory
    for running in started:
        running.stop()


@pytest.fixture
def server(server_factory: Callable[..., RunningServer]) -> RunningServer:
    """A server with the demo app, test keys and a short heartbeat."""
    return server_factory({"heartbeat_interval": 0.5})


HEARTBEAT = 0.1  # the heartbeat_server's interval: its tests wait a few of them, not seconds


@pytest.fixture
def heartbeat_server(server_factory: Callable[..., RunningServer]) -> RunningServer:
    """A ``server`` whose heartbeat interval is ``HEARTBEAT``, for the tests that wait for one."""
    return server_factory({"heartbeat_interval": HEARTBEAT})


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.02) -> None:
    """Poll ``predicate`` until it holds, failing after ``timeout`` (scaled) seconds."""
    deadline = time.monotonic() + scaled(timeout)
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


async def eventually(
    predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01
) -> None:
    """``wait_until`` for async tests: poll ``predicate`` without blocking the event loop."""
    deadline = time.monotonic() + scaled(timeout)
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
