"""docs/configuration.md against the Config model: every key documented, no key invented.

Each configuration struct (``Config``, ``KeyConfig``, ``WebhooksConfig``, ``CorsConfig`` and any
added later) has one section of the doc whose heading names it in backticks. In that section,
each table whose first column is headed ``key`` lists the struct's keys, one `` `name` `` per
row. The tests walk the model with ``msgspec.inspect`` and compare, so that neither the doc nor
the model can change without the other.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest

from skillwire.server import Config

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
ENV_PREFIX = "SKILLWIRE_"
_BACKTICKED = re.compile(r"`([^`]+)`")


@dataclass(frozen=True)
class Section:
    """A struct of the model, where it sits in the file (``webhooks.``), and its keys."""

    struct: type[Any]
    prefix: str  # "" for Config, "webhooks." for [webhooks], "keys[]." for [[keys]]
    fields: dict[str, msgspec.inspect.Field]
    env: bool  # may environment variables reach its keys?


@dataclass
class Row:
    key: str
    cells: dict[str, str]


@dataclass
class DocSection:
    heading: str
    rows: list[Row] = field(default_factory=list)


def _struct_of(kind: msgspec.inspect.Type) -> type[Any] | None:
    """The struct class inside ``kind``: itself, a list's items, or one member of a union."""
    if isinstance(kind, msgspec.inspect.StructType):
        return kind.cls
    if isinstance(kind, msgspec.inspect.ListType):
        return _struct_of(kind.item_type)
    if isinstance(kind, msgspec.inspect.UnionType):
        found = [s for t in kind.types if (s := _struct_of(t)) is not None]
        return found[0] if found else None
    return None


def model_sections() -> list[Section]:
    """Every struct reachable from Config, depth first, with its key-path prefix."""
    sections: list[Section] = []

    def walk(cls: type[Any], prefix: str, env: bool) -> None:
        info = msgspec.inspect.type_info(cls)
        assert isinstance(info, msgspec.inspect.StructType)
        sections.append(Section(cls, prefix, {f.name: f for f in info.fields}, env))
        for f in info.fields:
            if isinstance(f.type, msgspec.inspect.DictType):
                # A table of named tables ([llm.upstreams.NAME]): the environment reaches them.
                inner = _struct_of(f.type.value_type)
                if inner is not None:
                    walk(inner, f"{prefix}{f.name}.<name>.", env)
                continue
            inner = _struct_of(f.type)
            if inner is None:
                continue
            in_list = isinstance(f.type, msgspec.inspect.ListType)
            # The environment reaches nested tables, never the items of a list of tables.
            walk(
                inner,
                f"{prefix}{f.name}[]." if in_list else f"{prefix}{f.name}.",
                env and not in_list,
            )

    walk(Config, "", True)
    return sections


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def doc_sections(text: str) -> list[DocSection]:
    """The doc's ``##`` sections with the rows of their ``key`` tables (code blocks skipped)."""
    sections: list[DocSection] = [DocSection("(top)")]
    header: list[str] | None = None
    in_code = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        if line.startswith("## "):
            sections.append(DocSection(line[3:].strip()))
            header = None
            continue
        if not line.startswith("|"):
            header = None
            continue
        cells = _cells(line)
        if header is None:
            header = [c.lower() for c in cells]
            continue
        if set(line.replace("|", "").strip()) <= set("-: "):
            continue  # the separator row
        if header[0] != "key":
            continue
        sections[-1].rows.append(Row(cells[0], dict(zip(header, cells, strict=False))))
    return sections


def _section_for(struct: type[Any], sections: list[DocSection]) -> DocSection:
    named = [s for s in sections if f"`{struct.__name__}`" in s.heading]
    assert len(named) == 1, (
        f"docs/configuration.md needs exactly one `## ...` heading naming `{struct.__name__}` "
        f"in backticks (found {len(named)})"
    )
    return named[0]


def _key_name(row: Row) -> str:
    match = re.fullmatch(r"`([a-z0-9_]+)`", row.key)
    assert match is not None, f"a key table's first cell must be one `key`, not {row.key!r}"
    return match.group(1)


def _default(f: msgspec.inspect.Field) -> Any:
    if f.default is not msgspec.NODEFAULT:
        return f.default
    if f.default_factory is not msgspec.NODEFAULT:
        return f.default_factory()
    return msgspec.NODEFAULT


def _ids(section: Section) -> str:
    return section.prefix.rstrip(".") or "Config"


SECTIONS = model_sections()


@pytest.fixture(scope="module")
def doc() -> list[DocSection]:
    return doc_sections(DOC.read_text(encoding="utf-8"))


@pytest.mark.parametrize("section", SECTIONS, ids=_ids)
def test_every_key_is_documented(section: Section, doc: list[DocSection]) -> None:
    """Every key of the struct has a row in its section's key table."""
    documented = {_key_name(row) for row in _section_for(section.struct, doc).rows}
    missing = sorted(f"{section.prefix}{name}" for name in section.fields if name not in documented)
    assert not missing, f"keys missing from docs/configuration.md: {missing}"


@pytest.mark.parametrize("section", SECTIONS, ids=_ids)
def test_every_documented_key_exists(section: Section, doc: list[DocSection]) -> None:
    """Every key in the section's key tables is a field of the struct, listed once."""
    names = [_key_name(row) for row in _section_for(section.struct, doc).rows]
    unknown = sorted(f"{section.prefix}{name}" for name in names if name not in section.fields)
    assert not unknown, f"docs/configuration.md documents keys that do not exist: {unknown}"
    twice = sorted({name for name in names if names.count(name) > 1})
    assert not twice, f"keys documented more than once: {twice}"


def test_every_key_table_belongs_to_a_struct(doc: list[DocSection]) -> None:
    """A `key` table outside the sections of the model's structs would document nothing."""
    owned = {_section_for(s.struct, doc).heading for s in SECTIONS}
    stray = [s.heading for s in doc if s.rows and s.heading not in owned]
    assert not stray, f"key tables under headings that name no config struct: {stray}"


@pytest.mark.parametrize("section", SECTIONS, ids=_ids)
def test_documented_defaults_match(section: Section, doc: list[DocSection]) -> None:
    """A default written as a JSON literal (`8000`, `"json"`, `[5.0, 30.0]`) is the real one."""
    for row in _section_for(section.struct, doc).rows:
        name = _key_name(row)
        if name not in section.fields or "default" not in row.cells:
            continue
        literal = _BACKTICKED.search(row.cells["default"])
        if literal is None:
            continue  # "none", "required", "see below": prose, not checked
        try:
            written = json.loads(literal.group(1))
        except ValueError:
            continue
        actual = msgspec.to_builtins(_default(section.fields[name]))
        assert written == actual, (
            f"`{section.prefix}{name}`: doc says {written!r}, model {actual!r}"
        )


@pytest.mark.parametrize("section", SECTIONS, ids=_ids)
def test_documented_environment_variables_match(section: Section, doc: list[DocSection]) -> None:
    """An environment variable named in a row is the one that reaches that key."""
    for row in _section_for(section.struct, doc).rows:
        name = _key_name(row)
        cell = row.cells.get("environment")
        if name not in section.fields or cell is None:
            continue
        variables = [v for v in _BACKTICKED.findall(cell) if v.startswith(ENV_PREFIX)]
        path = f"{section.prefix}{name}"
        if not section.env:
            assert not variables, f"`{path}` cannot be set from the environment"
            continue
        expected = ENV_PREFIX + path.replace(".", "__").upper()
        for variable in variables:
            assert variable == expected or variable.startswith(expected + "__"), (
                f"`{path}`: doc names {variable}, the variable is {expected}"
            )
