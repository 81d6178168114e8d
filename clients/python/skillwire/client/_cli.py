"""``skillwire-client``: the API from a shell.

Piped, every command prints JSON lines on stdout (one object per line: a skill, a task, an
event); in a terminal it prints readable tables and pretty JSON, and following a task
draws live progress bars on stderr, or, for a task that streams text (an LLM's answer),
prints that text on stdout as it grows. Exit status: 0 success; 1 the task ended ``failed``,
``partial`` or ``cancelled``; 2 bad usage; 3 an error from the server; 4 the server could not
be reached; 130 interrupted; 141 the reader of stdout went away (``| head``), as for any
command killed by SIGPIPE, without a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any, TextIO

from skillwire.protocol import (
    Event,
    SkillwireError,
    Task,
    TaskStatus,
    Unauthorized,
    to_builtins,
)

from ._client import AsyncClient
from ._errors import TransportError
from ._events import event_task, is_terminal
from ._livetext import LiveText
from ._progress import ProgressBars
from ._settings import DEFAULT_TRANSPORTS

__all__ = ["main"]

EXIT_OK, EXIT_TASK_FAILED, EXIT_USAGE, EXIT_API_ERROR, EXIT_UNREACHABLE = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a command cut off by `| head`
MAX_SUMMARY_ERRORS = 5
FAILED_STATUSES = {TaskStatus.FAILED, TaskStatus.PARTIAL, TaskStatus.CANCELLED}
TRANSPORTS = ["auto", *DEFAULT_TRANSPORTS]


class Output:
    """Where results go: JSON lines when piped (or ``--json``), readable text in a terminal."""

    def __init__(self, out: TextIO, err: TextIO, *, as_json: bool) -> None:
        self.out = out
        self.err = err
        self.json = as_json

    def line(self, obj: Any) -> None:
        self.out.write(json.dumps(to_builtins(obj), ensure_ascii=False) + "\n")
        self.out.flush()

    def show(self, obj: Any) -> None:
        if self.json:
            self.line(obj)
        else:
            self.out.write(json.dumps(to_builtins(obj), indent=2, ensure_ascii=False) + "\n")

    def table(self, rows: Sequence[Sequence[str]]) -> None:
        if not rows:
            return
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            self.out.write("  ".join([*cells, row[-1]]).rstrip() + "\n")

    def summary(self, task: Task) -> None:
        """The end of a followed task, in a few lines (the whole Task is ``--json``'s)."""
        self.out.write(_summary(task))

    def error(self, exc: SkillwireError, message: str | None = None, **details: Any) -> None:
        """``exc`` on stderr; ``message`` and ``details`` say more than the error itself."""
        message = message or exc.message
        if self.json:
            body = {
                "code": exc.code,
                "message": message,
                "details": {**exc.details, **details},
                "request_id": exc.request_id,
            }
            self.err.write(json.dumps({"error": body}, default=str) + "\n")
        else:
            suffix = f" (request_id {exc.request_id})" if exc.request_id else ""
            self.err.write(f"error: {exc.code}: {message}{suffix}\n")


def _summary(task: Task) -> str:
    counts = Counter(request.status.value for request in task.requests)
    tally = ", ".join(f"{count} {status}" for status, count in counts.items())
    lines = [f"{task.task_id}  {task.app}/{task.skill}  {task.status.value}  ({tally})"]
    failed = [r for r in task.requests if r.error is not None]
    for request in failed[:MAX_SUMMARY_ERRORS]:
        assert request.error is not None
        lines.append(f"  [{request.index}] {request.error.code}: {request.error.message}")
    if len(failed) > MAX_SUMMARY_ERRORS:
        lines.append(f"  … and {len(failed) - MAX_SUMMARY_ERRORS} more failed")
    if task.error is not None:
        lines.append(f"  {task.error.code}: {task.error.message}")
    lines.append(f"the whole task: skillwire-client task {task.task_id}  (--json for JSON)")
    return "\n".join(lines) + "\n"


def _request_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {text!r} ({exc.msg})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"a request must be a JSON object: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skillwire-client",
        description="Call skillwire skills and follow their tasks.",
        epilog="Exit status: 0 ok; 1 task failed, partial or cancelled; 2 usage; "
        "3 server error; 4 server unreachable.",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("SKILLWIRE_URL", "http://127.0.0.1:8000"),
        help="server URL (env SKILLWIRE_URL; default %(default)s)",
    )
    parser.add_argument(
        "--key",
        default=os.environ.get("SKILLWIRE_API_KEY"),
        help="API key (env SKILLWIRE_API_KEY)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument("--json", action="store_true", help="JSON lines even in a terminal")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("apps", help="list apps and their skills")
    skill = commands.add_parser("skill", help="describe one skill")
    skill.add_argument("app")
    skill.add_argument("skill")

    call = commands.add_parser("call", help="call a skill with one JSON object per request")
    call.add_argument("app")
    call.add_argument("skill")
    call.add_argument("requests", nargs="+", type=_request_object, metavar="JSON")
    call.add_argument("--stream", action="store_true", help="follow the task's events")
    call.add_argument("--transport", choices=TRANSPORTS, default="auto")
    call.add_argument("--wait", type=float, help="seconds to wait for the result")
    call.add_argument("--webhook-url")
    call.add_argument("--idempotency-key")
    call.add_argument("--metadata", type=_request_object, help="a JSON object")

    task = commands.add_parser("task", help="show one task")
    task.add_argument("task_id", metavar="ID")
    task.add_argument("--wait", type=float, help="long-poll up to this many seconds")

    tasks = commands.add_parser("tasks", help="list tasks, newest first")
    tasks.add_argument("--status", choices=[s.value for s in TaskStatus])
    tasks.add_argument("--app")
    tasks.add_argument("--skill")
    tasks.add_argument("--limit", type=int, default=50)
    tasks.add_argument("--offset", type=int, default=0)
    tasks.add_argument("--all", action="store_true", help="every page")

    cancel = commands.add_parser("cancel", help="cancel a task")
    cancel.add_argument("task_id", metavar="ID")

    events = commands.add_parser("events", help="follow a task's events")
    events.add_argument("task_id", metavar="ID")
    events.add_argument("--after", type=int, default=0)
    events.add_argument("--transport", choices=TRANSPORTS, default="auto")
    events.add_argument("--snapshot", action="store_true")
    return parser


def _exit_for(task: Task) -> int:
    return EXIT_TASK_FAILED if task.status in FAILED_STATUSES else EXIT_OK


async def _follow(out: Output, events: AsyncIterator[Event], title: str, *, bars: bool) -> int:
    progress = ProgressBars(out.err, title) if bars else None
    # In a terminal, streamed text is printed as it grows, and stands for the Task's JSON.
    text = LiveText(out.out) if bars else None
    final: Task | None = None
    async for event in events:
        terminal = is_terminal(event)
        if text is not None and progress is not None:
            streaming = text.started
            text.update(event)
            if text.started and not streaming:
                progress.forget()  # the text went below the bars: draw them afresh at the end
            if terminal:
                text.finish()
            if terminal or not text.started:
                progress.update(event)
        else:
            out.line(event)
        if terminal:
            final = event_task(event)
    if final is None:
        return EXIT_OK
    if progress is not None and not (text is not None and text.started):
        out.summary(final)  # the bars were drawn for the terminal event already
    return _exit_for(final)


async def run(args: argparse.Namespace, out: Output) -> int:
    async with AsyncClient(args.url, api_key=args.key, timeout=args.timeout) as client:
        bars = not out.json
        if args.command == "apps":
            apps = await client.apps()
            if out.json:
                for app in apps:
                    for skill in app.skills:
                        out.line(skill)
            else:
                out.table(
                    [
                        (f"{s.app}/{s.skill}", s.mode.value, s.description)
                        for app in apps
                        for s in app.skills
                    ]
                )
            return EXIT_OK
        if args.command == "skill":
            out.show(await client.skill(args.app, args.skill))
            return EXIT_OK
        if args.command == "call":
            if args.stream:
                stream = client.stream(
                    args.app,
                    args.skill,
                    args.requests,
                    transport=args.transport,
                    webhook_url=args.webhook_url,
                    idempotency_key=args.idempotency_key,
                    metadata=args.metadata,
                )
                async with contextlib.aclosing(stream):
                    return await _follow(out, stream, f"{args.app}/{args.skill}", bars=bars)
            task = await client.call(
                args.app,
                args.skill,
                args.requests,
                wait=args.wait,
                webhook_url=args.webhook_url,
                idempotency_key=args.idempotency_key,
                metadata=args.metadata,
            )
            out.show(task)
            return _exit_for(task)
        if args.command == "task":
            task = await client.task(args.task_id, wait=args.wait)
            out.show(task)
            return _exit_for(task)
        if args.command == "tasks":
            filters = {"status": args.status, "app": args.app, "skill": args.skill}
            if args.all:
                found = [t async for t in client.iter_tasks(**filters)]
            else:
                page = await client.tasks(**filters, limit=args.limit, offset=args.offset)
                found = page.items
            if out.json:
                for task in found:
                    out.line(task)
            else:
                out.table(
                    [(t.task_id, f"{t.app}/{t.skill}", t.status.value, t.created_at) for t in found]
                )
            return EXIT_OK
        if args.command == "cancel":
            out.show(await client.cancel(args.task_id))
            return EXIT_OK
        assert args.command == "events"
        events = client.events(
            args.task_id, after=args.after, transport=args.transport, snapshot=args.snapshot
        )
        async with contextlib.aclosing(events):
            return await _follow(out, events, "events", bars=bars)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Output(sys.stdout, sys.stderr, as_json=args.json or not sys.stdout.isatty())
    try:
        return asyncio.run(run(args, out))
    except BrokenPipeError:
        _drop_stdout()
        return EXIT_BROKEN_PIPE
    except TransportError as exc:
        out.error(exc, f"{args.url}: {exc.message}", url=args.url)
        return EXIT_UNREACHABLE
    except Unauthorized as exc:
        if args.key:
            hint = "the server refused the key given by --key or SKILLWIRE_API_KEY"
        else:
            hint = "no API key given: pass --key KEY or set SKILLWIRE_API_KEY"
        out.error(exc, f"{exc.message} ({hint})")
        return EXIT_API_ERROR
    except SkillwireError as exc:
        out.error(exc)
        return EXIT_API_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _drop_stdout() -> None:
    """Point stdout at /dev/null: the interpreter's last flush at exit must not fail again on
    the closed pipe (Python's documented recipe for SIGPIPE)."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def entry_point() -> None:
    """The console script: exit with ``main``'s status."""
    sys.exit(main())
