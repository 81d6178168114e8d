"""The bench's helpers: R's closed-loop delivery count, the py-spy stage split, S's checks."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_closed_loop_counts_each_loaders_latest_cumulative_report_once() -> None:
    """The publisher sums each loader's newest count: a late or repeated datagram adds nothing."""
    acks = load("bench/baselines/publish.py").Acks()
    for datagram in (b"11 5", b"22 3", b"11 4", b"11 5", b"22 7"):
        acks.datagram_received(datagram, ("127.0.0.1", 0))
    assert acks.delivered == 5 + 7
    assert acks.counts == {b"11": 5, b"22": 7}


def test_stage_of_a_sample_is_its_innermost_known_frame(tmp_path: Path) -> None:
    """A sample counts for the innermost stage it reaches; loop-only samples for the loop."""
    stages = load("bench/tools/stages.py")
    publish = "MemoryBackbone._publish (server/skillwire/server/backbone/_memory.py:220)"
    push = "Outbox.push (server/skillwire/server/channels/_outbox.py:55)"
    raw = tmp_path / "stacks.txt"
    raw.write_text(
        f"Runner.run (asyncio/runners.py:118);{publish};{push} 3\n"
        f"Runner.run (asyncio/runners.py:118);{publish} 1\n"
        "Runner.run (asyncio/runners.py:118) 4\n"
    )
    total, counts = stages.stages(raw)
    assert total == 8
    assert counts == {
        "outbox hand-off (channels/_outbox.py)": 3,
        "append: memory log (backbone/_memory.py)": 1,
        stages.LOOP: 4,
    }


def test_session_follower_is_complete_only_with_every_seq_once_in_order() -> None:
    """S's follower counts as exactly once only with seqs 1..session.closed's, no gap or repeat."""
    followers = load("bench/tools/session_followers.py")

    def follower(seqs: list[int], closed: int | None) -> object:
        f = followers.Follower("ses_1")
        f.seqs, f.closed_seq = seqs, closed
        return f

    assert follower([1, 2, 3], 3).complete()  # type: ignore[attr-defined]
    assert not follower([1, 3], 3).complete()  # type: ignore[attr-defined]
    assert not follower([1, 2, 2, 3], 3).complete()  # type: ignore[attr-defined]
    assert not follower([2, 1, 3], 3).complete()  # type: ignore[attr-defined]
    assert not follower([1, 2], None).complete()  # type: ignore[attr-defined]
    summary = followers.summary([follower([1, 2, 2, 3], 3), follower([1, 2, 3], 3)])
    assert (summary["received"], summary["unique"], summary["dups"]) == (7, 6, 1)
    assert summary["complete"] == {"ses_1": 1}


def test_session_figures_trust_a_follower_only_if_its_close_is_the_deletes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A follower whose session.closed seq differs from the DELETE's last_seq is not exactly once."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    sessions = importlib.import_module("harness.sessions")
    results = [
        {"closed_seq": {"a": 5, "b": 4}, "complete": {"a": 1, "b": 1}, "received": 9,
         "unique": 9, "errors": [], "cpu_pct": 1.0},
        {"closed_seq": {"c": 5}, "complete": {"c": 1}, "received": 6, "unique": 5,
         "errors": [], "cpu_pct": 2.0},
    ]  # fmt: skip
    run: dict[str, object] = {}
    sessions.session_figures(run, results, {"a": 5, "b": 5, "c": 5}, followers=1, wall=2.0)
    assert run["exactly_once"] == 2  # b's follower saw a close at 4, the DELETE said 5
    assert (run["expected"], run["delivered"], run["lost"], run["dups"]) == (15, 14, 1, 1)


def test_llm_rows_count_lost_tokens_and_keep_the_gateway_figures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """L's rows: tokens lost = expected - read, tokens/s over the readers' time, gateway figures."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    llm = importlib.import_module("harness.llm")
    report = {
        "rate": 50.0,
        "runs": [
            {"mode": "direct", "streams": 10, "tokens": 1000, "expected": 1000, "errors": 0,
             "first_error": None, "p50_ms": 0.2, "p99_ms": 1.0, "seconds": 2.0,
             "gateway_cpu_us_per_token": None, "gateway_rss_per_stream_kib": None},
            {"mode": "openai", "streams": 10, "tokens": 990, "expected": 1000, "errors": 1,
             "first_error": "TimeoutError()", "p50_ms": 0.7, "p99_ms": 4.0, "seconds": 2.0,
             "added_p50_ms": 0.5, "added_p99_ms": 3.0, "gateway_cpu_us_per_token": 15.0,
             "gateway_rss_per_stream_kib": 60.0},
        ],
    }  # fmt: skip
    direct, openai = llm.llm_rows(report)
    assert (direct["system"], direct["lost"], direct["events_per_s"]) == ("upstream", 0, 500.0)
    assert (openai["system"], openai["transport"]) == ("skillwire-memory", "openai")
    assert (openai["lost"], openai["stream_errors"], openai["added_p99_ms"]) == (10, 1, 3.0)
    assert openai["cpu_us_per_token"] == 15.0
    assert openai["loader_errors"] == ["TimeoutError()"]
