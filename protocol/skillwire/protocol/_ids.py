"""Task ids: url-safe, unguessable, and carrying their creation time.

Layout before base64url: 6 bytes of creation time in milliseconds, 12 random bytes (96 bits),
then a 6-byte HMAC tag over both. The tag lets a server tell an id it issued (and which may
have expired) from one it never issued, without keeping a list of every id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

__all__ = ["TASK_ID_PREFIX", "new_task_id", "task_id_time"]

TASK_ID_PREFIX = "tsk_"
_TIME_BYTES = 6
_RANDOM_BYTES = 12
_TAG_BYTES = 6
_RAW_LEN = _TIME_BYTES + _RANDOM_BYTES + _TAG_BYTES
_ENCODED_LEN = len(TASK_ID_PREFIX) + (_RAW_LEN * 4) // 3
# base64url without padding; b64decode alone would also take "+" and "/" (and skip junk),
# so one issued id would have several spellings.
_ENCODED = re.compile(r"[A-Za-z0-9_-]*")


def _tag(secret: bytes, body: bytes) -> bytes:
    return hmac.new(secret, body, hashlib.sha256).digest()[:_TAG_BYTES]


def new_task_id(secret: bytes, now: float) -> str:
    """A fresh task id created at ``now`` (POSIX seconds), signed with ``secret``."""
    body = int(now * 1000).to_bytes(_TIME_BYTES, "big") + secrets.token_bytes(_RANDOM_BYTES)
    raw = body + _tag(secret, body)
    return TASK_ID_PREFIX + base64.urlsafe_b64encode(raw).decode("ascii")


def task_id_time(secret: bytes, task_id: str) -> float | None:
    """The creation time (POSIX seconds) of an id this secret issued, else ``None``."""
    if len(task_id) != _ENCODED_LEN or not task_id.startswith(TASK_ID_PREFIX):
        return None
    if not _ENCODED.fullmatch(task_id, len(TASK_ID_PREFIX)):
        return None
    try:
        raw = base64.urlsafe_b64decode(task_id[len(TASK_ID_PREFIX) :].encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
    if len(raw) != _RAW_LEN:
        return None
    body, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
    if not hmac.compare_digest(tag, _tag(secret, body)):
        return None
    return int.from_bytes(body[:_TIME_BYTES], "big") / 1000
