"""The publisher for the baselines: what a worker process would do to push outputs.

Waits for the start file (so subscribers connect first), then publishes ``n`` messages
``{"type": "tick", "i": i, "t": time.time(), "pad": "xx..."}`` (about ``size`` bytes) to each
target, ``rate`` rounds per second (0: as fast as it can), and prints one JSON line with what
it did. With ``--window W`` (scenarios R and A-win) it runs a closed loop instead of a rate:
it keeps at most W deliveries outstanding (published messages times ``--fanout`` followers
each, minus what the loaders report delivered: each loader sends its cumulative count as a
UDP datagram "<loader> <count>" to ``--ack-port``). ``--wait-subscribed`` waits until every
target channel has a subscriber (PUBSUB NUMSUB) before the first message: a relay that has
not subscribed yet would miss it. Targets are Redis channels (``--mode redis``: a plain PUBLISH, which is what the naive
baseline and raw pub/sub subscribers hear) or socket.io rooms (``--mode socketio``:
``AsyncRedisManager(write_only=True).emit``). Runs in bench/.venv-baselines. Bounded: at
most ``n`` rounds, and it gives up after ``--max-wait`` seconds without a start signal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time


def payload(i: int, pad: str) -> dict[str, object]:
    return {"type": "tick", "i": i, "t": time.time(), "pad": pad}


async def run(args: argparse.Namespace) -> dict[str, object]:
    targets = [f"{args.prefix}{j}" for j in range(args.count)] if args.count else [args.prefix]
    pad = "x" * max(0, args.size - 55)
    if args.mode == "socketio":
        import socketio

        manager = socketio.AsyncRedisManager(args.redis_url, write_only=True)
        redis_client = None
    else:
        import redis.asyncio as aioredis

        redis_client = aioredis.Redis.from_url(args.redis_url)
        await redis_client.ping()
    deadline = time.monotonic() + args.max_wait
    while not os.path.exists(args.start_file):
        if time.monotonic() > deadline:
            return {"error": "no start signal", "published": 0}
        await asyncio.sleep(0.002)
    if args.wait_subscribed:
        assert redis_client is not None
        while True:
            counts = await redis_client.pubsub_numsub(*targets)
            if all(count >= 1 for _, count in counts):
                break
            if time.monotonic() > deadline:
                return {"error": "targets never subscribed", "published": 0}
            await asyncio.sleep(0.01)
    if args.window:
        assert redis_client is not None
        result = await closed_loop(args, redis_client, targets, pad)
        await redis_client.aclose()
        return result
    start = time.monotonic()
    published = 0
    sem = asyncio.Semaphore(args.concurrency)

    async def emit_one(room: str, data: dict[str, object]) -> None:
        async with sem:
            await manager.emit("tick", data, room=room, namespace="/")

    for i in range(1, args.n + 1):
        if args.rate > 0:
            ahead = start + (i - 1) / args.rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
        if args.mode == "socketio":
            if len(targets) == 1:
                await manager.emit("tick", payload(i, pad), room=targets[0], namespace="/")
            else:
                await asyncio.gather(*(emit_one(t, payload(i, pad)) for t in targets))
        else:
            assert redis_client is not None
            if len(targets) == 1:
                await redis_client.publish(targets[0], json.dumps(payload(i, pad)))
            else:
                pipe = redis_client.pipeline(transaction=False)
                for target in targets:
                    pipe.publish(target, json.dumps(payload(i, pad)))
                await pipe.execute()
        published += len(targets)
    elapsed = time.monotonic() - start
    if redis_client is not None:
        await redis_client.aclose()
    return {"published": published, "elapsed_s": elapsed, "targets": len(targets)}


class Acks(asyncio.DatagramProtocol):
    """The loaders' cumulative delivered counts, one per loader: the sum is what arrived."""

    def __init__(self) -> None:
        self.counts: dict[bytes, int] = {}
        self.delivered = 0
        self.changed = asyncio.Event()

    def datagram_received(self, data: bytes, addr: object) -> None:
        who, _, count = data.partition(b" ")
        value = int(count)
        if value > self.counts.get(who, 0):
            self.delivered += value - self.counts.get(who, 0)
            self.counts[who] = value
            self.changed.set()


async def closed_loop(
    args: argparse.Namespace, redis_client: object, targets: list[str], pad: str
) -> dict[str, object]:
    """Publish round-robin over the targets (message i to every target before i + 1), never
    more than ``args.window`` deliveries outstanding; give up after ``args.stall`` seconds
    without a delivery."""
    loop = asyncio.get_running_loop()
    transport, acks = await loop.create_datagram_endpoint(
        Acks, local_addr=("127.0.0.1", args.ack_port)
    )
    order = ((i, t) for i in range(1, args.n + 1) for t in targets)
    total = args.n * len(targets)
    published = 0
    waits = 0
    start = time.monotonic()
    try:
        while published < total:
            room = (args.window - (published * args.fanout - acks.delivered)) // args.fanout
            if room <= 0:
                acks.changed.clear()
                waits += 1
                try:
                    await asyncio.wait_for(acks.changed.wait(), args.stall)
                except TimeoutError:
                    return {"error": "stalled", "published": published, "acked": acks.delivered}
                continue
            pipe = redis_client.pipeline(transaction=False)  # type: ignore[attr-defined]
            for _ in range(min(room, args.batch, total - published)):
                i, target = next(order)
                pipe.publish(target, json.dumps(payload(i, pad)))
                published += 1
            await pipe.execute()
        elapsed = time.monotonic() - start
    finally:
        transport.close()
    return {
        "published": published,
        "elapsed_s": elapsed,
        "targets": len(targets),
        "window": args.window,
        "waits": waits,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mode", choices=["redis", "socketio"], required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument(
        "--prefix", required=True, help="channel/room name (or prefix with --count)"
    )
    parser.add_argument("--count", type=int, default=0, help="targets prefix0..prefixN-1")
    parser.add_argument("--n", type=int, required=True, help="messages per target")
    parser.add_argument("--rate", type=float, default=0.0, help="rounds per second (0: max)")
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--start-file", required=True)
    parser.add_argument("--max-wait", type=float, default=120.0)
    parser.add_argument("--concurrency", type=int, default=64, help="socket.io emits in flight")
    parser.add_argument(
        "--window", type=int, default=0, help="closed loop: deliveries outstanding (0: --rate)"
    )
    parser.add_argument("--fanout", type=int, default=1, help="followers per target (deliveries)")
    parser.add_argument("--ack-port", type=int, default=0, help="UDP port the loaders report to")
    parser.add_argument(
        "--batch", type=int, default=256, help="closed loop: PUBLISHes per pipeline"
    )
    parser.add_argument("--stall", type=float, default=30.0, help="closed loop: give up after")
    parser.add_argument("--wait-subscribed", action="store_true", help="wait for NUMSUB >= 1")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(run(args))
    else:
        result = uvloop.run(run(args))
    print(json.dumps(result), flush=True)
    sys.exit(0 if "error" not in result else 1)


if __name__ == "__main__":
    main()
