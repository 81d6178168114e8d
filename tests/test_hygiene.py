"""The suite's own rules, checked: every test says in one docstring what behaviour it shows."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_every_test_has_a_docstring() -> None:
    """Each test function in tests/ opens with a docstring saying the behaviour it checks."""
    missing = []
    for path in sorted(TESTS.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and node.name.startswith("test_")
                and not ast.get_docstring(node)
            ):
                missing.append(f"{path.relative_to(TESTS.parent)}:{node.lineno} {node.name}")
    assert missing == []
