"""Issue 18's targets report (bench/harness/targets.py): a fixed ``bench/run`` JSON in, Markdown out."""

from __future__ import annotations

import copy
import importlib
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).with_name("data")
FIXED = DATA / "latest-repeat2.json"


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch) -> dict[str, ModuleType]:
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # bench.py's import root
    return {name: importlib.import_module(f"harness.{name}") for name in ("targets", "figures")}


def fixed() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(FIXED.read_text())
    return result


def row(markdown: str, *needles: str) -> str:
    found = [line for line in markdown.splitlines() if all(n in line for n in needles)]
    assert len(found) == 1, found
    return found[0]


def test_targets_tool_prints_the_expected_markdown_for_a_fixed_run() -> None:
    """bench/tools/targets.py turns a fixed two-pass latest.json into the expected table."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "tools" / "targets.py"), str(FIXED)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert out == (DATA / "latest-repeat2-targets.md").read_text()


def test_relay_target_names_the_naive_figures_of_the_same_run(
    harness: dict[str, ModuleType],
) -> None:
    """R's ratios are taken against, and show, the same run's naive row, pass by pass."""
    md = harness["targets"].markdown(fixed())
    line = row(md, "R x1,000", "skillwire-redis")
    assert "naive: 22,000/s, 22.5 µs per delivery" in line
    # pass 2: 31,000 vs naive's pass 2 24,000 (1.29x), 14.0 µs vs 21.0 (0.67x)
    assert "(passes: 1.36x/0.67x, 1.29x/0.67x)" in line
    assert line.endswith("| not met |")


def test_a_target_is_judged_on_the_ratio_it_shows(harness: dict[str, ModuleType]) -> None:
    """9.1 µs vs 22.5 µs shows as 0.40x and meets "≤ 0.4x": the figure shown is the one judged."""
    line = row(harness["targets"].markdown(fixed()), "R x1,000", "skillwire-memory")
    assert "0.40x CPU (9.1 µs)" in line
    assert line.endswith("| **met** |")


def test_a_loss_fails_a_ratio_target_that_is_otherwise_met(
    harness: dict[str, ModuleType],
) -> None:
    """A-win at 3.25x naive is not met once a delivery was lost."""
    result = fixed()
    for run in result["runs"]:
        if run["scenario"] == "A-win" and run["system"] == "skillwire-memory":
            run["lost"] = 1
    line = row(harness["targets"].markdown(result), "A-win K=1,000", "skillwire-memory")
    assert "3.25x" in line and line.endswith("| not met |")


def test_a_scenario_left_out_is_a_target_not_run(harness: dict[str, ModuleType]) -> None:
    """A run without the A latency rows says so instead of dropping the target."""
    result = fixed()
    result["runs"] = [r for r in result["runs"] if r["scenario"] != "A-lat"]
    line = row(harness["targets"].markdown(result), "A WS p99 at 10,000")
    assert "not in this run" in line and line.endswith("| not run |")


def test_collapse_repeats_keeps_each_pass_in_order(harness: dict[str, ModuleType]) -> None:
    """With --repeat 3 the median row carries every pass's figures, in pass order."""
    base = {"scenario": "R", "label": "R", "system": "naive", "transport": "ws", "clients": 9}
    group = []
    for evs, cpu in ((300.0, 3.0), (100.0, 1.0), (200.0, 2.0)):
        run = copy.deepcopy(base)
        run.update(events_per_s=evs, cpu_us_per_delivery=cpu, lost=0, p50_ms=None)
        group.append(run)
    (median,) = harness["figures"].collapse_repeats(group)
    assert median["events_per_s"] == 200.0
    assert median["passes"] == [
        {"events_per_s": 300.0, "cpu_us_per_delivery": 3.0, "lost": 0},
        {"events_per_s": 100.0, "cpu_us_per_delivery": 1.0, "lost": 0},
        {"events_per_s": 200.0, "cpu_us_per_delivery": 2.0, "lost": 0},
    ]
