"""The bench's helpers of issue 18: R's closed-loop delivery count and the py-spy stage split."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

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
