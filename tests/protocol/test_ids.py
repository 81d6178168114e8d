"""Task ids (``_ids.py``): url-safe, unguessable, and carrying their creation time."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable

import pytest

from skillwire.protocol import TASK_ID_PREFIX, new_task_id, task_id_time

SECRET = b"s" * 32
OTHER_SECRET = b"o" * 32
NOW = 1_795_435_200.123  # 2026-11-23T12:00:00.123Z
URL_SAFE = re.compile(r"^tsk_[A-Za-z0-9_-]+$")
B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def raw(task_id: str) -> bytes:
    return base64.urlsafe_b64decode(task_id.removeprefix(TASK_ID_PREFIX))


def test_prefix_and_alphabet() -> None:
    """An id starts with ``tsk_`` and uses only url-safe characters (no padding)."""
    assert TASK_ID_PREFIX == "tsk_"
    for _ in range(200):
        task_id = new_task_id(SECRET, NOW)
        assert URL_SAFE.match(task_id), task_id
        assert "=" not in task_id


def test_ids_are_unguessable() -> None:
    """Ids made in the same millisecond differ in at least 96 random bits."""
    ids = {new_task_id(SECRET, NOW) for _ in range(2000)}
    assert len(ids) == 2000
    randoms = {raw(task_id)[6:18] for task_id in ids}
    assert len(randoms) == 2000
    assert all(len(r) * 8 >= 96 for r in randoms)
    # Every one of the 96 random bits takes both values across the ids.
    combined_or = combined_and = 0
    for r in randoms:
        combined_or |= int.from_bytes(r, "big")
        combined_and &= int.from_bytes(r, "big")
    assert combined_or == 2**96 - 1
    assert combined_and == 0


@pytest.mark.parametrize("now", [0.0, 1.0009, NOW, 1_795_435_200.999, 4_102_444_800.5])
def test_task_id_time_returns_the_creation_time(now: float) -> None:
    """The same secret reads back the creation time, to the millisecond."""
    created = task_id_time(SECRET, new_task_id(SECRET, now))
    assert created is not None
    assert created == pytest.approx(now, abs=0.001)
    assert created <= now
    assert created == int(now * 1000) / 1000


def test_ids_sort_by_time_within_the_time_prefix() -> None:
    """The time comes first, so a later id's time bytes are larger."""
    early, late = new_task_id(SECRET, NOW), new_task_id(SECRET, NOW + 1)
    assert raw(early)[:6] < raw(late)[:6]


def test_another_secret_does_not_recognise_the_id() -> None:
    """An id made with another secret (another deployment) gives None."""
    assert task_id_time(OTHER_SECRET, new_task_id(SECRET, NOW)) is None


def test_tampered_ids_give_none() -> None:
    """Changing any one character after the prefix breaks the tag."""
    task_id = new_task_id(SECRET, NOW)
    for position in range(len(TASK_ID_PREFIX), len(task_id)):
        for replacement in (B64_CHARS[0], B64_CHARS[-1]):
            if task_id[position] == replacement:
                continue
            tampered = task_id[:position] + replacement + task_id[position + 1 :]
            assert task_id_time(SECRET, tampered) is None, (position, tampered)


def test_moved_time_gives_none() -> None:
    """An id whose time bytes were rewritten (to dodge expiry) is not recognised."""
    body = bytearray(raw(new_task_id(SECRET, NOW)))
    body[:6] = int((NOW + 86_400) * 1000).to_bytes(6, "big")
    forged = TASK_ID_PREFIX + base64.urlsafe_b64encode(bytes(body)).decode()
    assert task_id_time(SECRET, forged) is None


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda t: t[:-1], id="one-char-short"),
        pytest.param(lambda t: t + "A", id="one-char-long"),
        pytest.param(lambda t: t[:-4], id="four-chars-short"),
        pytest.param(lambda t: t + "AAAA", id="four-chars-long"),
        pytest.param(lambda t: "", id="empty"),
        pytest.param(lambda t: TASK_ID_PREFIX, id="prefix-only"),
        pytest.param(lambda t: t[:-2] + "==", id="padding"),
        pytest.param(lambda t: t[:-1] + "!", id="non-base64"),
        pytest.param(lambda t: t[:-1] + "é", id="non-ascii"),
        pytest.param(lambda t: t[:-1] + " ", id="space"),
        pytest.param(lambda t: t[:10] + "\n" + t[11:], id="newline"),
        pytest.param(lambda t: "tsx_" + t[4:], id="wrong-prefix"),
        pytest.param(lambda t: "TSK_" + t[4:], id="upper-prefix"),
        pytest.param(lambda t: t[4:] + "AAAA", id="no-prefix"),
    ],
)
def test_malformed_ids_give_none(mutate: Callable[[str], str]) -> None:
    """Wrong length, padding, non-base64 or non-ASCII characters, or a wrong prefix: None."""
    assert task_id_time(SECRET, mutate(new_task_id(SECRET, NOW))) is None


def test_standard_base64_spelling_gives_none() -> None:
    """An issued id respelt with ``+`` or ``/`` (standard base64) is not the same id."""
    respelt: list[str] = []
    while len(respelt) < 2:
        task_id = new_task_id(SECRET, NOW)
        body = task_id.removeprefix(TASK_ID_PREFIX)
        if "-" in body or "_" in body:
            assert task_id_time(SECRET, task_id) is not None
            respelt.append(TASK_ID_PREFIX + body.replace("-", "+").replace("_", "/"))
    for task_id in respelt:
        assert task_id_time(SECRET, task_id) is None, task_id
