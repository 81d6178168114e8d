"""The ``skillwire`` command: ``serve`` (HTTP + workers) and ``worker`` (workers only)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from ._config import Config, load_config

__all__ = ["main"]

T = TypeVar("T")
log = logging.getLogger("skillwire")


class StartupError(Exception):
    """The process cannot start: ``main`` prints the message on one line and exits."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _building(build: Callable[[], T]) -> T:
    """Build the app or the workers; a failure (an app that does not load) is one line."""
    try:
        return build()
    except Exception as exc:
        log.debug("start-up failed", exc_info=True)  # the traceback, at log_level = "debug"
        raise StartupError(f"cannot start: {type(exc).__name__}: {exc}", 2) from None


def _listen(host: str, port: int) -> Any:
    """The listening socket, bound here so that a port in use is one clear line (exit 1)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise StartupError(f"cannot listen on {host}:{port}: {reason}", 1) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skillwire", description="skillwire: a real-time streaming gateway for skills"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the HTTP and WebSocket API")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default 8000; 0 picks a free one)")
    serve.add_argument("--config", help="TOML configuration file")
    serve.add_argument("--apps", nargs="+", default=[], metavar="MODULE:ATTR", help="apps to load")
    serve.add_argument(
        "--no-workers", action="store_true", help="run no sub-requests here (redis backbone)"
    )
    serve.add_argument("--no-demo", action="store_true", help="do not load the demo app")
    worker = commands.add_parser("worker", help="run sub-requests only (redis backbone)")
    worker.add_argument("--config", help="TOML configuration file")
    worker.add_argument("--concurrency", type=int, help="sub-requests in flight (default 64)")
    worker.add_argument("--apps", nargs="+", default=[], metavar="MODULE:ATTR", help="apps to load")
    worker.add_argument("--no-demo", action="store_true", help="do not load the demo app")
    worker.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="serve Prometheus metrics on 127.0.0.1:PORT (default: off)",
    )
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if getattr(args, "host", None) is not None:
        overrides["host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["port"] = args.port
    if getattr(args, "concurrency", None) is not None:
        overrides["concurrency"] = args.concurrency
    if getattr(args, "no_workers", False):
        overrides["workers"] = False
    if args.no_demo:
        overrides["demo"] = False
    return overrides


def _configure_logging(config: Config) -> None:
    # The server's modules load when a command runs: `--help` and a config error stay quick.
    from ._logging import configure_logging

    configure_logging(config.log_level, config.log_format)


def uvicorn_config(app: Any, config: Config) -> Any:
    """The uvicorn settings of a skillwire server, with its connection limits (tests reuse it)."""
    # The server's modules load when a command runs: `--help` and a config error stay quick.
    import uvicorn

    from ._http_protocol import ConnectionLimits, limited_http_protocol
    from ._ws_connection import WebSocketConnection
    from ._ws_protocol import WebSocketProtocol

    limits = ConnectionLimits(
        header_timeout=config.header_timeout,
        keepalive_timeout=config.keepalive_timeout,
        max_header_bytes=config.max_header_bytes,
        max_connections=config.max_connections,
    )
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        http=limited_http_protocol(limits),
        # Our own class (memory per idle connection, cost per frame: docs/architecture.md),
        # uvicorn's where permessage-deflate is wanted: ours does not compress.
        ws=WebSocketProtocol if config.ws_compression else WebSocketConnection,
        log_config=None,
        access_log=False,
        lifespan="on",
        ws_max_size=config.ws_max_message,
        # Each compressed connection holds zlib state (hundreds of KiB, outside Python's
        # heap), freed only when the GC finds its cycle: off unless configured (bench/tools/
        # churn_rss.py: 51 -> 151 MiB over 10,000 connect/close cycles with it, 84 without).
        ws_per_message_deflate=config.ws_compression,
    )


def _raise_fd_limit(max_connections: int) -> None:
    """Lift the soft open-file limit towards max_connections (plus room for Redis, logs...).

    A soft limit of 1024 (many distributions' default) would end accept() with EMFILE long
    before max_connections, and the server would go silent instead of answering 503.
    """
    import resource  # POSIX only: imported where it is used, on the platforms that have it

    wanted = max_connections + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    reachable = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < reachable:
        resource.setrlimit(resource.RLIMIT_NOFILE, (reachable, hard))
    if reachable < wanted:
        log.warning(
            "the open-file limit (%d) is below max_connections + 256 (%d): raise it "
            "(ulimit -n, nofile) or lower max_connections",
            reachable,
            wanted,
        )


def serve(config: Config, apps: Sequence[str]) -> None:
    # The server's modules load when a command runs: `--help` and a config error stay quick.
    import uvicorn

    from .http import create_app

    app = _building(lambda: create_app(config, apps))
    runtime = app.state.skillwire
    if runtime.keys.generated_key:
        runtime.announce_key()

    class Server(uvicorn.Server):
        loop: asyncio.AbstractEventLoop | None = None
        draining_since: float | None = None

        def handle_exit(self, sig: int, frame: Any) -> None:
            # Before uvicorn waits for open connections: end streams, close sockets (1012).
            runtime.begin_drain()
            first_sigterm = sig == signal.SIGTERM and self.draining_since is None
            if first_sigterm and config.drain_period > 0 and self.loop is not None:
                # Keep listening a while, answering 503 (and /readyz 503), so a balancer's
                # probe sees the drain instead of refused connections; then stop.
                self.draining_since = self.loop.time()
                self.loop.call_soon_threadsafe(
                    self.loop.call_later, config.drain_period, self._stop, sig, frame
                )
                return
            self._stop(sig, frame)

        def _stop(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            if sig == signal.SIGTERM:
                # A drained SIGTERM is a clean exit (0); uvicorn would re-raise it (143).
                self._captured_signals.remove(sig)

    _raise_fd_limit(config.max_connections)
    listener = _listen(config.host, config.port)
    server = Server(uvicorn_config(app, config))

    async def run() -> None:
        server.loop = asyncio.get_running_loop()
        startup = asyncio.create_task(server.serve(sockets=[listener]))
        # uvicorn ends a failed start-up with SystemExit, which leaves this task's exception
        # unretrieved (a second, confusing traceback): retrieve it.
        startup.add_done_callback(lambda task: task.cancelled() or task.exception())
        # uvicorn signals readiness only through this flag; poll it briefly.
        while not server.started and not startup.done():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if server.started:
            _tune_gc()
            for sock in (s for srv in server.servers for s in srv.sockets):
                host, port = sock.getsockname()[:2]
                shown = f"[{host}]" if ":" in host else host
                print(f"skillwire listening on http://{shown}:{port}", flush=True)
                break
        await startup

    _run(run())


def work(config: Config, apps: Sequence[str], metrics_port: int = 0) -> None:
    """Run a worker process until SIGTERM or SIGINT, then finish or requeue its work."""
    # The server's modules load when a command runs: `--help` and a config error stay quick.
    from ._runtime import make_registry

    # Apps that do not load stop here, in one line (the LLM bridge's registry is built below,
    # inside the loop its upstream client needs).
    _building(lambda: make_registry(config, apps))

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await _work(config, apps, stop, metrics_port)

    _run(run())


async def _work(
    config: Config, apps: Sequence[str], stop: asyncio.Event, metrics_port: int = 0
) -> None:
    """The worker process's life: start, run until ``stop`` is set, stop and close everything
    it opened (its pool, the LLM bridge's and the HTTP skills' clients, the backbone)."""
    # The server's modules load when a command runs: `--help` and a config error stay quick.
    from prometheus_client import start_http_server

    from ._metrics import Metrics
    from ._ratelimit import RateLimits
    from ._runtime import make_backbone, make_llm, make_registry, make_remote, make_workers
    from .httpskills import HttpSkills

    log = logging.getLogger("skillwire.worker")
    backbone = make_backbone(config)
    limits = RateLimits(config, windows=backbone.windows)
    metrics = Metrics()
    llm = make_llm(config, limits, metrics)
    http_skills = HttpSkills(config.http_skills, default_timeout=config.skill_timeout)
    registry = make_registry(config, apps, llm, http_skills)
    if metrics_port:
        start_http_server(metrics_port, addr="127.0.0.1", registry=metrics.registry)
    # Remote skills' work claimed here goes to a process with a worker for it.
    remote = make_remote(config, backbone, registry)
    pool = make_workers(config, backbone, registry, limits, metrics, remote)
    await backbone.start()
    await pool.start()
    _tune_gc()
    print(f"skillwire worker {pool.consumer} running", flush=True)
    log.info("worker %s started (concurrency %d)", pool.consumer, config.concurrency)
    await stop.wait()
    log.info("worker %s stopping", pool.consumer)
    await pool.stop(grace=config.shutdown_grace)
    if llm is not None:
        await llm.aclose()
    await http_skills.close()
    await backbone.close()


def _tune_gc() -> None:
    """Fewer, cheaper collections once the process has started (bench/: GC pauses).

    Everything built at start-up (modules, the app, the config) lives as long as the process:
    frozen, full collections no longer walk it. Per-event objects die young, mostly freed by
    reference counting; a larger young generation collects them less often, so fewer survive
    into the older generations whose collections (tens of ms with thousands of connections)
    stall every connection at once.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed (uvicorn[standard] brings it), as uvicorn would."""
    try:
        import uvloop  # optional: only where it is installed
    except ImportError:
        factory = None
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config, overrides=_overrides(args))
        # auth (Starlette with it) loads once a command runs: `--help` stays quick.
        from .auth import check_roles

        check_roles(config)  # the key store's check of roles, at start as any config error
    except Exception as exc:  # a bad config file or variable: say which, exit 2
        print(f"skillwire: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    _configure_logging(config)
    try:
        if args.command == "serve":
            serve(config, args.apps)
        elif args.command == "worker":
            if config.backbone != "redis":
                raise StartupError(
                    "`worker` needs the redis backbone "
                    "(SKILLWIRE_BACKBONE=redis and SKILLWIRE_REDIS_URL)",
                    2,
                )
            work(config, args.apps, args.metrics_port)
    except StartupError as exc:
        print(f"skillwire: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    main()
