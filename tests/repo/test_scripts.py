"""The repository's scripts, as ``make test`` runs them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINTED = ("protocol", "server", "clients", "tests", "bench")


def _checkout(root: Path) -> None:
    """A copy of the repository's lint setup, with one clean file in each package."""
    (root / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "lint", root / "scripts" / "lint")
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    (root / ".venv").symlink_to(ROOT / ".venv")
    for package in LINTED:
        (root / package).mkdir()
        (root / package / "clean.py").write_text('"""Clean."""\n')


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(root / "scripts" / "lint")], capture_output=True, text=True, timeout=60
    )


def test_lint_ignores_a_skill_file_in_the_repository_root(tmp_path: Path) -> None:
    """scripts/lint checks the project's packages, not a user's file in the root."""
    _checkout(tmp_path)
    # What the quickstart has a user write: unsorted imports, an unused name, no formatting.
    (tmp_path / "my_skill.py").write_text("import sys,os\ndef run( x ):\n  return x\n")
    result = _lint(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "my_skill.py" not in result.stdout + result.stderr


def test_lint_still_fails_on_a_defect_in_a_package(tmp_path: Path) -> None:
    """scripts/lint still fails when one of the project's packages has a lint error."""
    _checkout(tmp_path)
    (tmp_path / "server" / "bad.py").write_text("import os\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "bad.py" in result.stdout + result.stderr
