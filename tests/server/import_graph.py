"""The import graph between the server's parts, read from the source with ``ast``.

A part is a subpackage (``auth``, ``backbone``, ``channels``, ``engine``, ``http``,
``webhooks``) or a top-level module (``_config``, ``_runtime``, ...). Every import counts,
those inside functions and under ``TYPE_CHECKING`` included: a cycle hidden in a function is
still a cycle. An import inside a function must say why, in a comment on its line or just
above it. ``python -m tests.server.import_graph`` prints the edges, cycles and such imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "server" / "skillwire" / "server"
PACKAGE = "skillwire.server"


def _part(module: str) -> str | None:
    """The part of ``skillwire.server`` a dotted module name belongs to (None: outside)."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    rest = module[len(PACKAGE) + 1 :]
    return rest.split(".")[0] if rest else None


def _module_of(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = [p for p in relative.parts if p != "__init__"]
    return ".".join([PACKAGE, *parts])


def _imported(path: Path) -> set[str]:
    """The dotted modules ``path`` imports (``from .x import y`` resolved, y included)."""
    module = _module_of(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def edges() -> dict[str, set[str]]:
    """Part -> the other parts it imports."""
    graph: dict[str, set[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        source = _part(_module_of(path))
        if source is None:  # the package's own __init__
            continue
        targets = graph.setdefault(source, set())
        for name in _imported(path):
            target = _part(name)
            if target is None or target == source:
                continue
            if (ROOT / target).is_dir() or (ROOT / f"{target}.py").exists():
                targets.add(target)
    return graph


def _is_import(line: str) -> bool:
    stripped = line.strip()
    return stripped.startswith(("import ", "from ", ")")) or not stripped


def unexplained_function_imports() -> list[str]:
    """``path:line`` of each import inside a function with no comment on its line, nor on
    the line above it (or above the run of imports it belongs to)."""
    found: list[str] = []
    for path in sorted(ROOT.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for function in ast.walk(ast.parse(text)):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                if "#" in lines[node.lineno - 1]:
                    continue
                above = node.lineno - 2
                while above > function.lineno and _is_import(lines[above]):
                    above -= 1
                if not lines[above].strip().startswith("#"):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected parts of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


if __name__ == "__main__":
    graph = edges()
    for source in sorted(graph):
        print(f"{source:16} -> {', '.join(sorted(graph[source]))}")
    print("cycles:", cycles(graph) or "none")
    print("imports in functions without a reason:", unexplained_function_imports() or "none")
