"""Comma-separated options (--only A,C, --a-k 100,1000), split where they are used.

They stay strings in the parsed args, so the JSON records the options as they were given.
"""

from __future__ import annotations


def csv_ints(text: str) -> list[int]:
    return [int(x) for x in str(text).split(",") if x.strip()]


def csv_strs(text: str) -> list[str]:
    return [x.strip() for x in str(text).split(",") if x.strip()]
