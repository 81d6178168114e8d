"""The bench suite still runs: ``bench/run --smoke`` end to end, and it loses nothing.

One tiny fan-out and tiny token streams (skillwire, memory backbone, a few WebSocket
subscribers, no baselines) through the real orchestrator, server and Node load generator. It checks what the run
delivered, never how fast: performance figures come only from a full ``bench/run``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(240)  # a first run installs the loader's npm packages
def test_bench_smoke_writes_json_with_zero_loss(tmp_path: Path) -> None:
    """bench/run --smoke runs A and T end to end and every event (every word) arrives once."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("the bench's load generator needs node and npm")
    out = tmp_path / "smoke.json"
    proc = subprocess.run(
        [str(ROOT / "bench" / "run"), "--smoke", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=230,
        check=False,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    result = json.loads(out.read_text())
    runs = result["runs"]
    assert [r["scenario"] for r in runs] == ["A", "T", "T-fan"]
    for run in runs:
        assert "error" not in run, run.get("error")
        assert run["system"] == "skillwire-memory"
        assert run["expected"] > 0
        assert run["delivered"] == run["expected"]
        assert run["lost"] == 0
        assert run["dups"] == 0
        assert run["gaps"] == 0
        assert run["samples"] == run["delivered"]  # a latency for every delivered event
    for run in runs[1:]:  # token streams: words arrive in deltas, each word exactly once
        assert run["expected"] == 5 * 20
        assert 0 < run["deltas_delivered"] <= run["delivered"]
        assert run["cpu_us_per_delta"] is not None
        assert run["rss_per_stream_kib"] is not None
    assert result["meta"]["machine"]["nproc"] >= 1
    assert "| scenario" in result["table"]
