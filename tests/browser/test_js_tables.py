"""skillwire.js's tables (error codes, temporary codes, event types) agree with the protocol's.

The browser client is plain JavaScript with no build step, so it keeps its own copies of a
few protocol tables. These tests read them out of the file (no browser) and pin them.
"""

from __future__ import annotations

import re
from pathlib import Path

from skillwire.client._errors import _BY_STATUS
from skillwire.protocol import (
    TERMINAL_EVENT_TYPES,
    ErrorCode,
    EventType,
    error_class_for,
    lifecycle,
)

SOURCE = (
    (Path(__file__).resolve().parents[2] / "server" / "skillwire" / "server" / "static")
    .joinpath("skillwire.js")
    .read_text("utf-8")
)
# The client's own codes for failures that never reached the API (no envelope, no status).
CLIENT_ONLY = {"NETWORK_ERROR", "CONNECTION_LOST", "TRANSPORT_UNAVAILABLE"}
CLIENT_ONLY_TEMPORARY = {"NETWORK_ERROR", "CONNECTION_LOST"}


def _literal(pattern: str) -> str:
    found = re.search(pattern, SOURCE, re.DOTALL)
    assert found is not None, f"no {pattern!r} in skillwire.js"
    return found.group(1)


def _strings(pattern: str) -> list[str]:
    """The quoted strings of a JS array or Set literal."""
    return re.findall(r'"([^"]+)"', _literal(pattern))


def _code_by_status() -> dict[int, str]:
    body = _literal(r"const CODE_BY_STATUS = \{(.*?)\};")
    return {int(k): v for k, v in re.findall(r'(\d+):\s*"([A-Z_]+)"', body)}


def test_temporary_codes_are_the_protocols() -> None:
    """TEMPORARY_CODES holds exactly the protocol's temporary codes, plus the client's own
    two for a failed or dropped connection (INTERNAL_ERROR is not temporary)."""
    temporary = set(_strings(r"const TEMPORARY_CODES = new Set\(\[(.*?)\]\)"))
    protocol = {c.value for c in ErrorCode if error_class_for(c).temporary}
    assert temporary - CLIENT_ONLY == protocol
    assert temporary & CLIENT_ONLY == CLIENT_ONLY_TEMPORARY
    assert not CLIENT_ONLY & {c.value for c in ErrorCode}


def test_code_by_status_is_the_python_clients() -> None:
    """A response without an envelope maps by status exactly as in the Python client."""
    assert _code_by_status() == {status: cls.code for status, cls in _BY_STATUS.items()}


def test_code_by_status_names_protocol_codes_of_that_status() -> None:
    """Each status maps to a protocol code whose class answers that status (or 503 for a
    proxy's 502 and 504)."""
    for status, code in _code_by_status().items():
        assert code in set(ErrorCode)
        expected = 503 if status in (502, 504) else status
        assert error_class_for(code).status == expected, (status, code)


def test_terminal_types_and_statuses_are_the_lifecycles() -> None:
    """TERMINAL_TYPES and TERMINAL_STATUSES are the lifecycle's terminal events and statuses."""
    assert set(_strings(r"export const TERMINAL_TYPES = Object\.freeze\(\[(.*?)\]\)")) == set(
        TERMINAL_EVENT_TYPES
    )
    assert set(_strings(r"const TERMINAL_STATUSES = new Set\(\[(.*?)\]\)")) == {
        s.value for s in lifecycle.TERMINAL_TASK_STATUSES
    }


def test_event_types_are_every_event_type() -> None:
    """EVENT_TYPES (what EventSource listens for) names every event type of the protocol."""
    body = _literal(r"const EVENT_TYPES = \[(.*?)\];")
    listed = set(re.findall(r'"([^"]+)"', body))
    if "...TERMINAL_TYPES" in body:
        listed |= set(_strings(r"export const TERMINAL_TYPES = Object\.freeze\(\[(.*?)\]\)"))
    assert listed == {t.value for t in EventType}
