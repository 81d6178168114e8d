"""Time format (``_timefmt.py``): RFC 3339, UTC, always six fraction digits and ``Z``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skillwire.protocol import format_time, parse_time

RFC3339_MICRO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
YEAR_2100_US = 4_102_444_800 * 1_000_000


@pytest.mark.parametrize(
    ("timestamp", "text"),
    [
        (0, "1970-01-01T00:00:00.000000Z"),
        (0.000001, "1970-01-01T00:00:00.000001Z"),
        (1_795_435_200, "2026-11-23T12:00:00.000000Z"),
        (1_795_435_200.5, "2026-11-23T12:00:00.500000Z"),
        (1_795_435_200.123456, "2026-11-23T12:00:00.123456Z"),
    ],
)
def test_format_time(timestamp: float, text: str) -> None:
    """format_time writes UTC with six fraction digits and Z, also for whole seconds."""
    assert format_time(timestamp) == text


def test_parse_time_of_the_contract_example() -> None:
    """The example of API.md parses and formats back to itself."""
    text = "2026-11-23T12:00:00.123456Z"
    assert parse_time(text) == pytest.approx(1_795_435_200.123456, abs=1e-6)
    assert format_time(parse_time(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-23T13:00:00.123456+01:00",
        "2026-11-23T07:30:00.123456-04:30",
        "2026-11-23T12:00:00.123456+00:00",
    ],
)
def test_parse_time_accepts_offsets(text: str) -> None:
    """A time with a numeric offset parses to the same instant as its Z form."""
    assert parse_time(text) == parse_time("2026-11-23T12:00:00.123456Z")


def test_parse_time_accepts_fewer_fraction_digits() -> None:
    """A peer's time without microseconds (or without a fraction) still parses."""
    assert parse_time("2026-11-23T12:00:00Z") == 1_795_435_200
    assert parse_time("2026-11-23T12:00:00.5Z") == 1_795_435_200.5


@given(st.integers(0, YEAR_2100_US))
def test_format_then_parse_round_trips(microseconds: int) -> None:
    """Any microsecond instant formats to the fixed shape and parses back to it."""
    text = format_time(microseconds / 1_000_000)
    assert RFC3339_MICRO_Z.match(text), text
    expected = EPOCH + timedelta(microseconds=microseconds)
    assert text == expected.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert format_time(parse_time(text)) == text


@given(st.integers(0, YEAR_2100_US), st.integers(0, YEAR_2100_US))
def test_text_order_is_time_order(first: int, second: int) -> None:
    """Formatted times sort as text in the same order as the instants (fixed width)."""
    a, b = format_time(first / 1_000_000), format_time(second / 1_000_000)
    assert (a < b) == (first < second)
