"""Task and session ids: url-safe, unguessable, and carrying their creation time.

Layout before base64url: 6 bytes of creation time in milliseconds, 12 random bytes (96 bits),
then a 6-byte HMAC tag over both. The tag lets a server tell an id it issued (and which may
have expired) from one it never issued, without keeping a list of every id.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets

__all__ = [
    "SESSION_ID_PREFIX",
    "TASK_ID_PREFIX",
    "new_session_id",
    "new_task_id",
    "session_id_time",
    "task_id_time",
]

TASK_ID_PREFIX = "tsk_"
SESSION_ID_PREFIX = "ses_"  # the same layout; the prefix is not signed, so both are checked
_TIME_BYTES = 6
_RANDOM_BYTES = 12
_TAG_BYTES = 6
_RAW_LEN = _TIME_BYTES + _RANDOM_BYTES + _TAG_BYTES
_ENCODED_LEN = len(TASK_ID_PREFIX) + (_RAW_LEN * 4) // 3
# base64url without padding; b64decode alone would also take "+" and "/" (and skip junk),
# so one issued id would have several spellings.
_ENCODED = re.compile(r"[A-Za-z0-9_-]*")


def _tag(secret: bytes, body: bytes) -> bytes:
    # hmac.digest: the one-shot C path, half the cost of an HMAC object (one per task created).
    return hmac.digest(secret, body, "sha256")[:_TAG_BYTES]


def new_task_id(secret: bytes, now: float) -> str:
    """A fresh task id created at ``now`` (POSIX seconds), signed with ``secret``."""
    return _new_id(TASK_ID_PREFIX, secret, now)


def task_id_time(secret: bytes, task_id: str) -> float | None:
    """The creation time (POSIX seconds) of an id this secret issued, else ``None``."""
    return _id_time(TASK_ID_PREFIX, secret, task_id)


def new_session_id(secret: bytes, now: float) -> str:
    """A fresh session id created at ``now`` (POSIX seconds), signed with ``secret``."""
    return _new_id(SESSION_ID_PREFIX, secret, now)


def session_id_time(secret: bytes, session_id: str) -> float | None:
    """The creation time (POSIX seconds) of a session id this secret issued, else ``None``."""
    return _id_time(SESSION_ID_PREFIX, secret, session_id)


def _new_id(prefix: str, secret: bytes, now: float) -> str:
    body = int(now * 1000).to_bytes(_TIME_BYTES, "big") + secrets.token_bytes(_RANDOM_BYTES)
    raw = body + _tag(secret, body)
    return prefix + base64.urlsafe_b64encode(raw).decode("ascii")


def _id_time(prefix: str, secret: bytes, task_id: str) -> float | None:
    if len(task_id) != _ENCODED_LEN or not task_id.startswith(prefix):
        return None
    if not _ENCODED.fullmatch(task_id, len(prefix)):
        return None
    try:
        raw = base64.urlsafe_b64decode(task_id[len(prefix) :].encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
    if len(raw) != _RAW_LEN:
        return None
    body, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
    if not hmac.compare_digest(tag, _tag(secret, body)):
        return None
    return int.from_bytes(body[:_TIME_BYTES], "big") / 1000
