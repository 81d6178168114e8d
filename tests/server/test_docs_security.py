"""docs/security.md against the role table in code: every permission documented, the roles'
rows true (``admin`` has them all, by the right count)."""

from __future__ import annotations

import re
from pathlib import Path

from skillwire.server.auth import DEFAULT_ROLES, Permission

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
NUMBERS = {6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten"}


def _table(header: str) -> dict[str, str]:
    """The rows of the table whose header row starts with ``| header |``: first cell (its
    backticked name) to second cell."""
    lines = DOC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows: dict[str, str] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        name = re.fullmatch(r"`([^`]+)`.*", cells[0])
        if name is not None:
            rows[name.group(1)] = cells[1]
    return rows


def test_every_permission_is_documented_once() -> None:
    """The permission table lists exactly the permissions the server knows."""
    assert set(_table("permission")) == {p.value for p in Permission}


def test_admin_row_counts_every_permission() -> None:
    """The admin role's row says it has all the permissions, by their true number."""
    assert DEFAULT_ROLES["admin"] == frozenset(Permission)
    assert _table("role")["admin"] == f"all {NUMBERS[len(Permission)]}"


def test_user_and_worker_rows_name_their_permissions() -> None:
    """The user and worker roles' rows name exactly the permissions the code gives them."""
    roles = _table("role")
    for role in ("user", "worker"):
        named = set(re.findall(r"`([a-z]+)`", roles[role].split(":")[0]))
        assert named == {p.value for p in DEFAULT_ROLES[role]}, role
