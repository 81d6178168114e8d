"""The bench suite still runs: ``bench/run --smoke`` end to end, and it loses nothing.

One tiny fan-out, A at a small window, a few idle tasks (followed and not), tiny token
streams, tiny relays (R: an outside publisher's Redis messages relayed by skillwire tasks, in
a closed loop and at a rate), tiny sessions (S: one session with a few followers, a few
sessions with one each) and a few LLM streams (L: through /v1/chat/completions from the
bench's own upstream); skillwire, memory backbone, no baselines; through the real
orchestrator, server, publisher, session followers and Node load generator. It checks what the run
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
    """bench/run --smoke runs A, A-win, C-task, T, R, S and L end to end; every event arrives once."""
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
    assert [r["scenario"] for r in runs] == [
        *("A", "A-win", "C-task", "C-idle-task", "T", "T-fan", "R", "R-rate", "S", "S-many"),
        *("L", "L"),
    ]
    for run in runs[-2:]:  # L: every token of every stream, direct and through the gateway
        assert "error" not in run, run.get("error")
        assert (run["expected"], run["delivered"], run["lost"]) == (100, 100, 0)
    assert runs[-1]["transport"] == "openai"
    assert runs[-1]["cpu_us_per_token"] is not None
    runs = runs[:-2]
    by_scenario = {r["scenario"]: r for r in runs}
    for name, followers in (("S", 5), ("S-many", 5)):  # every session event, once, in order
        run = by_scenario.pop(name)
        assert "error" not in run, run.get("error")
        assert run["expected"] > 0
        assert (run["delivered"], run["lost"], run["dups"]) == (run["expected"], 0, 0)
        assert run["exactly_once"] == followers == run["clients"]
        assert run["cpu_us_per_delivery"] is not None
    for name in ("C-task", "C-idle-task"):  # idle tasks, followed or not: all of them open
        run = by_scenario.pop(name)
        assert "error" not in run, run.get("error")
        assert (run["ready"], run["lost"], run["connect_failed"]) == (5, 0, 0)
        assert run["rss_after_kib"] > 0
    runs = list(by_scenario.values())
    for run in runs:
        assert "error" not in run, run.get("error")
        assert run["system"] == "skillwire-memory"
        assert run["expected"] > 0
        assert run["delivered"] == run["expected"]
        assert run["lost"] == 0
        assert run["dups"] == 0
        assert run["gaps"] == 0
        assert run["samples"] == run["delivered"]  # a latency for every delivered event
    for name in ("A-win", "R", "R-rate"):  # relayed: every PUBLISHed message, to every follower
        run = by_scenario[name]
        assert "error" not in run["publisher"], run["publisher"]
        followers = run["clients"] if name == "A-win" else 1  # R: one channel per follower
        assert run["publisher"]["published"] * followers == run["expected"]
        assert run["cpu_us_per_delivery"] is not None
    assert by_scenario["A-win"]["window"] == 2 * 5  # 2 messages in flight to 5 followers
    assert by_scenario["R"]["publisher"]["window"] == 5
    for run in (by_scenario["T"], by_scenario["T-fan"]):  # words arrive in deltas, once each
        assert run["expected"] == 5 * 20
        assert 0 < run["deltas_delivered"] <= run["delivered"]
        assert run["cpu_us_per_delta"] is not None
        assert run["rss_per_stream_kib"] is not None
    assert result["meta"]["machine"]["nproc"] >= 1
    assert "| scenario" in result["table"]
