"""Where each microsecond of a relayed event goes: py-spy's collapsed stacks (``--format raw``,
as ``bench/run --only PR`` writes them) attributed to the stages of the per-event path.

    .venv/bin/python bench/tools/stages.py bench/results/profile-R-memory.txt --us 40.1

Each sample goes to the stage of its innermost frame that a rule below names (a library frame,
such as redis-py's, counts for the skillwire or bench frame that called it); ``--us`` (the
run's server CPU per delivery) turns the shares into microseconds per delivery. py-spy samples
the Python stacks only: time in C (msgspec, uvloop, the kernel) counts for its Python caller.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# (stage, substrings of a frame "function (file:line)"): the first rule a frame matches wins
RULES: list[tuple[str, tuple[str, ...]]] = [
    # "websockets/" also matches starlette/websockets.py (WebSocket.send); _ws_connection.py
    # and _ws_frames.py are our own protocol class, uvicorn/protocols/websockets uvicorn's.
    (
        "frame: WebSocket protocol send/transport",
        ("websockets/", "uvicorn/protocols/websockets", "_ws_connection.py", "_ws_frames.py"),
    ),
    ("writer task (channels/_websocket.py, asyncio tasks)", ("channels/_websocket.py",)),
    ("outbox hand-off (channels/_outbox.py)", ("channels/_outbox.py",)),
    ("fan-out (channels/_subscription.py)", ("channels/_subscription.py",)),
    ("lifecycle check (protocol/_lifecycle.py)", ("protocol/_lifecycle.py",)),
    (
        "event encoding (protocol codec, time format)",
        ("protocol/_codec.py", "protocol/_models.py", "protocol/_timefmt.py", "EncodedEvent"),
    ),
    ("append: memory log (backbone/_memory.py)", ("backbone/_memory.py", "backbone/_base.py")),
    ("append + fan-out: redis backbone (backbone/redis)", ("backbone/redis/",)),
    ("skill's emit (engine/_context.py, _worker.py)", ("engine/_context.py", "engine/_worker.py")),
    ("relay input: bench skill's pub/sub read (bench/apps.py)", (" (apps.py", "bench/apps.py")),
    ("other skillwire (engine, http, channels)", ("skillwire/server/", "skillwire/protocol/")),
    # py-spy does not always see a resumed coroutine's callers: a lone redis-py frame is the
    # relay's input on the memory backbone, and mostly the backbone's live feed on redis
    ("redis-py pub/sub read (caller not seen)", ("redis/", "hiredis")),
    ("relay input: its asyncio.Queue (caller not seen)", ("asyncio/queues.py",)),
    ("HTTP, uvicorn other", ("uvicorn/", "starlette/", "httptools")),
]
# The redis backbone's worker (``--worker``, profile-R-redis-worker0.txt): the relay skill's
# input, its emit, the APPEND call's arguments, and the batcher's round trips.
WORKER_RULES: list[tuple[str, tuple[str, ...]]] = [
    ("round trips: batcher (packing, socket write, replies)", ("backbone/redis/_batching.py",)),
    (
        "APPEND's arguments (group_args, string_fields, encode, time) and reply",
        ("backbone/redis/", "backbone/_deliveries.py", "protocol/"),
    ),
    ("write-behind (engine/_context.py)", ("engine/_context.py",)),
    ("skill's run (engine/_worker.py)", ("engine/_worker.py",)),
    ("relay input: bench skill's pub/sub read (bench/apps.py)", (" (apps.py", "bench/apps.py")),
    ("other skillwire (engine, worker loop)", ("skillwire/server/",)),
    # Only for a sample with no frame above: a library frame counts for its caller's stage.
    ("redis-py, caller not seen (mostly the relay's pub/sub read)", ("redis/", "hiredis")),
    ("relay input: its asyncio.Queue (caller not seen)", ("asyncio/queues.py",)),
]
WORKER_FALLBACK = 2  # the last rules of WORKER_RULES
LOOP = "event loop only (uvloop, asyncio callbacks, GC)"


def stage_of(
    frames: list[str], rules: list[tuple[str, tuple[str, ...]]] = RULES, fallback: int = 0
) -> str:
    """The stage of the innermost frame a rule names; with ``fallback``, the last rules only
    when no frame matches the others."""
    for group in (rules[: len(rules) - fallback], rules[len(rules) - fallback :]):
        for frame in reversed(frames):  # innermost first
            for stage, needles in group:
                if any(n in frame for n in needles):
                    return stage
    return LOOP


def stages(
    raw: Path, rules: list[tuple[str, tuple[str, ...]]] = RULES, fallback: int = 0
) -> tuple[int, dict[str, int]]:
    counts: dict[str, int] = {}
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        total += count
        stage = stage_of(stack.split(";"), rules, fallback)
        counts[stage] = counts.get(stage, 0) + count
    return total, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw", type=Path, help="py-spy collapsed stacks (--format raw)")
    parser.add_argument("--us", type=float, default=0.0, help="server CPU us per delivery")
    parser.add_argument(
        "--worker", action="store_true", help="a redis backbone worker's stacks (worker0)"
    )
    args = parser.parse_args()
    if args.worker:
        total, counts = stages(args.raw, WORKER_RULES, WORKER_FALLBACK)
    else:
        total, counts = stages(args.raw)
    print(f"{total} samples")
    for stage, count in sorted(counts.items(), key=lambda kv: -kv[1]):
        share = count / total if total else 0.0
        us = f"{share * args.us:6.1f} us" if args.us else ""
        print(f"  {100 * share:5.1f} %  {us}  {stage}")


if __name__ == "__main__":
    main()
