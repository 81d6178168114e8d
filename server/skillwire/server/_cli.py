"""The ``skillwire`` command: ``serve`` (HTTP + workers) and ``worker`` (workers only)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from ._config import Config, load_config

__all__ = ["main"]


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
    from ._logging import configure_logging

    configure_logging(config.log_level, config.log_format)


def serve(config: Config, apps: Sequence[str]) -> None:
    import asyncio
    import signal

    import uvicorn

    from .http import create_app

    app = create_app(config, apps)
    runtime = app.state.skillwire
    if runtime.keys.generated_key:
        print(f"API key: {runtime.keys.generated_key}", flush=True)
        runtime.key_announced = True

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # Before uvicorn waits for open connections: end streams, close sockets (1012).
            runtime.begin_drain()
            super().handle_exit(sig, frame)
            if sig == signal.SIGTERM:
                # A drained SIGTERM is a clean exit (0); uvicorn would re-raise it (143).
                self._captured_signals.remove(sig)

    server = Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            ws_max_size=config.ws_max_message,
        )
    )

    async def run() -> None:
        startup = asyncio.create_task(server.serve())
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
    import asyncio
    import signal

    from prometheus_client import start_http_server

    from ._metrics import Metrics
    from ._ratelimit import RateLimits
    from ._runtime import make_backbone, make_registry, make_remote, make_workers

    log = logging.getLogger("skillwire.worker")

    async def run() -> None:
        backbone = make_backbone(config)
        registry = make_registry(config, apps)
        limits = RateLimits(config)
        metrics = Metrics()
        if metrics_port:
            start_http_server(metrics_port, addr="127.0.0.1", registry=metrics.registry)
        # Remote skills' work claimed here goes to a process with a worker for it.
        remote = make_remote(config, backbone, registry)
        pool = make_workers(config, backbone, registry, limits, metrics, remote)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await backbone.start()
        await pool.start()
        _tune_gc()
        print(f"skillwire worker {pool.consumer} running", flush=True)
        log.info("worker %s started (concurrency %d)", pool.consumer, config.concurrency)
        await stop.wait()
        log.info("worker %s stopping", pool.consumer)
        await pool.stop(grace=config.shutdown_grace)
        await limits.close()
        await backbone.close()

    _run(run())


def _tune_gc() -> None:
    """Fewer, cheaper collections once the process has started (bench/: GC pauses).

    Everything built at start-up (modules, the app, the config) lives as long as the process:
    frozen, full collections no longer walk it. Per-event objects die young, mostly freed by
    reference counting; a larger young generation collects them less often, so fewer survive
    into the older generations whose collections (tens of ms with thousands of connections)
    stall every connection at once.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed (uvicorn[standard] brings it), as uvicorn would."""
    import asyncio

    try:
        import uvloop
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
    except Exception as exc:  # a bad config file or variable: say which, exit 2
        print(f"skillwire: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    _configure_logging(config)
    if args.command == "serve":
        serve(config, args.apps)
    elif args.command == "worker":
        if config.backbone != "redis":
            print(
                "skillwire: `worker` needs the redis backbone "
                "(SKILLWIRE_BACKBONE=redis and SKILLWIRE_REDIS_URL)",
                file=sys.stderr,
            )
            raise SystemExit(2)
        work(config, args.apps, args.metrics_port)


if __name__ == "__main__":
    main()
