"""The worker's side of R's lone events on the redis backbone, in process: K sub-requests each
emit one output per turn of the loop (as K relay skills do when a burst of K messages comes
in), then wait until it is stored; CPU µs of this process and of redis-server per output, and
Redis commands per output. Against a redis-server of its own on a free port.

    .venv/bin/python bench/tools/redis_lone.py --tasks 500 --rounds 20 --repeat 5

The relay skill's own input (its pub/sub read) is not in it: only emit, write-behind, APPEND's
arguments, the batcher's round trips and the script.
"""

from __future__ import annotations

import argparse
import time

import redis.asyncio as aioredis
from redis_outputs import cpu_seconds, redis_commands, with_own_redis  # this directory

from skillwire.protocol import EventType, format_time, lifecycle
from skillwire.server import Context
from skillwire.server.backbone.redis import RedisBackbone

# The shape of R's relayed message (bench/baselines/publish.py): a few numbers and a string.
ITEM = {"seq": 0, "t": 1_765_000_000.123456, "pad": "x" * 64}


async def main(args: argparse.Namespace, url: str, redis_pid: int) -> None:
    backbone = RedisBackbone(url)
    await backbone.start()
    stats = aioredis.Redis.from_url(url)
    try:
        ctxs = []
        for i in range(args.tasks):
            task_id = f"tsk_lone{i}"
            task, first = lifecycle.new_task(task_id, "bench", "relay", 1, {}, format_time(0))
            await backbone.create_task(task, first, owner="u", webhook_url=None, work=[])
            await backbone.append(task_id, EventType.REQUEST_STARTED, 0, {})
            ctxs.append(Context(backbone, task_id, 0, "bench", "relay", "u"))
        best: tuple[float, float, float] | None = None
        for _ in range(args.repeat + 1):  # the first pass warms up
            commands0, _ = await redis_commands(stats)
            cpu0, rcpu0 = time.process_time(), cpu_seconds(redis_pid)
            for k in range(args.rounds):
                for ctx in ctxs:
                    await ctx.output({**ITEM, "seq": k})
                for ctx in ctxs:
                    await ctx.flush()
            cpu, rcpu = time.process_time() - cpu0, cpu_seconds(redis_pid) - rcpu0
            commands1, _ = await redis_commands(stats)
            n = args.rounds * args.tasks
            figures = (1e6 * cpu / n, 1e6 * rcpu / n, (commands1 - commands0) / n)
            print(
                f"worker {figures[0]:5.1f} us/output  redis {figures[1]:5.1f} us/output  "
                f"{figures[2]:5.2f} commands/output",
                flush=True,
            )
            if best is None or figures[0] < best[0]:
                best = figures
        assert best is not None
        print(f"best: worker {best[0]:.1f} us, redis {best[1]:.1f} us, {best[2]:.2f} commands")
    finally:
        await stats.aclose()
        await backbone.close()


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--tasks", type=int, default=500, help="sub-requests, one output each")
    parser.add_argument("--rounds", type=int, default=20, help="outputs per sub-request")
    parser.add_argument("--repeat", type=int, default=5, help="measured passes (best is kept)")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = _args()
    with_own_redis("skillwire-lone-", lambda url, pid: main(arguments, url, pid))
