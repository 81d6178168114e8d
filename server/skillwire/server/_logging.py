"""Logs: one JSON object a line (with the request's context as fields), or console text.

Keys never reach a log line: a request is logged with its principal's name only, and no
query string does either (a ``?ticket=``, or a key a client wrongly put in a URL): every
line's message loses the query of any path it names, whoever logged it (uvicorn logs
``WebSocket /api/v1/ws?ticket=... [accepted]``). The access line (logger
``skillwire.access``) and audit lines (``skillwire.audit``) carry their fields as
``extra={"fields": {...}}``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

__all__ = ["ConsoleFormatter", "DropQueryStrings", "JsonFormatter", "audit", "configure_logging"]

_audit = logging.getLogger("skillwire.audit")
# A path followed by its query: "/api/v1/ws?ticket=tkt_..." keeps "/api/v1/ws".
_QUERY = re.compile(r"(/[^\s?#\"']*)\?[^\s#\"']*")


class DropQueryStrings(logging.Filter):
    """Removes the query string of every path a log line names (tickets, misplaced keys)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg = _QUERY.sub(r"\1", message)
            record.args = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class ConsoleFormatter(logging.Formatter):
    """Readable lines for a terminal: time, level, logger, message (fields left out)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")


def configure_logging(level: str, fmt: str) -> None:
    """Log to stderr; ``fmt`` ``auto`` is console text on a terminal and JSON otherwise."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    handler.addFilter(DropQueryStrings())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def audit(action: str, principal: str, **fields: Any) -> None:
    """One audit line: who did what (a call, a cancel, an admin action) to what."""
    if not _audit.isEnabledFor(logging.INFO):
        return
    _audit.info(
        "%s by %s",
        action,
        principal,
        extra={"fields": {"audit": action, "principal": principal, **fields}},
    )
