"""Structured logs: one JSON object a line, with the request's context as fields.

Keys never reach a log line: a request is logged with its principal's name only. The
access line (logger ``skillwire.access``) and audit lines (``skillwire.audit``) carry their
fields as ``extra={"fields": {...}}``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

__all__ = ["JsonFormatter", "audit", "configure_logging"]

_audit = logging.getLogger("skillwire.audit")


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


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
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
