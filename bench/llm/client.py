"""The LLM bench's reader: N concurrent streams, each token's latency from the time it carries.

Modes: ``direct`` (the upstream's own /chat/completions), ``openai`` (skillwire's
/v1/chat/completions, streamed) and ``ws`` (``llm/chat`` over skillwire's WebSocket; one
socket per stream, as browsers would). HTTP is read with raw asyncio streams, so the reader's
own cost stays small and the same for both HTTP paths. Prints one JSON line: latencies (ms)
and counts.

    python -m bench.llm.client --mode openai --url http://127.0.0.1:8000 --streams 100 --tokens 250
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from typing import Any
from urllib.parse import urlsplit

TIMES = re.compile(rb"1\d{9}\.\d{6}")
STATE: dict[str, Any] = {"active": 0, "peak": 0}


def _body(model: str, tokens: int) -> bytes:
    return json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": "bench"}],
            "max_tokens": tokens,
            "stream": True,
        }
    ).encode()


async def http_stream(
    url: str, path: str, key: str, model: str, tokens: int, lat: list[float]
) -> int:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port, limit=1 << 20)
    body = _body(model, tokens)
    writer.write(
        b"POST %s HTTP/1.1\r\nhost: %s\r\nauthorization: Bearer %s\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
        % (path.encode(), parts.netloc.encode(), key.encode(), len(body), body)
    )
    await writer.drain()
    got = 0
    rest = b""
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            now = time.time()
            data = rest + data
            cut = data.rfind(b"\n") + 1  # whole lines only: a read may end mid-token
            lines, rest = data[:cut], data[cut:]
            for stamp in TIMES.findall(lines):
                lat.append((now - float(stamp)) * 1000)
                got += 1
            if b"[DONE]" in lines:
                break
    finally:
        writer.close()
    return got


async def ws_stream(url: str, key: str, model: str, tokens: int, lat: list[float]) -> int:
    from websockets.asyncio.client import connect

    got = 0
    async with connect(
        url.replace("http://", "ws://") + "/api/v1/ws",
        subprotocols=["skillwire.v1"],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {key}"},
        max_size=None,
        open_timeout=60,
    ) as conn:
        request = {
            "model": model,
            "messages": [{"role": "user", "content": "bench"}],
            "max_tokens": tokens,
        }
        await conn.send(
            json.dumps(
                {"op": "call", "ref": "c", "app": "llm", "skill": "chat", "requests": [request]}
            )
        )
        async for frame in conn:
            now = time.time()
            data = frame.encode() if isinstance(frame, str) else frame
            for line in data.split(b"\n"):
                if b'"request.delta"' in line:  # the terminal Task repeats the whole text
                    for stamp in TIMES.findall(line):
                        lat.append((now - float(stamp)) * 1000)
                        got += 1
                elif b'"task.completed"' in line or b'"task.failed"' in line:
                    return got
    return got


async def one(mode: str, args: argparse.Namespace, lat: list[float], delay: float) -> int:
    await asyncio.sleep(delay)
    STATE["active"] += 1
    STATE["peak"] = max(STATE["peak"], STATE["active"])
    try:
        if mode == "direct":
            return await http_stream(
                args.url, "/v1/chat/completions", args.key, "bench", args.tokens, lat
            )
        if mode == "openai":
            return await http_stream(
                args.url, "/v1/chat/completions", args.key, args.model, args.tokens, lat
            )
        return await ws_stream(args.url, args.key, args.model, args.tokens, lat)
    finally:
        STATE["active"] -= 1


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def main(args: argparse.Namespace) -> None:
    lat: list[float] = []
    started = time.monotonic()
    # Streams start spread over the ramp, so their tokens do not all fall on the same instant.
    jobs = [one(args.mode, args, lat, args.ramp * i / args.streams) for i in range(args.streams)]
    results = await asyncio.gather(*jobs, return_exceptions=True)
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    print(
        json.dumps(
            {
                "event": "done",
                "mode": args.mode,
                "streams": args.streams,
                "tokens": len(lat),
                "expected": args.streams * args.tokens,
                "errors": len(errors),
                "first_error": errors[0] if errors else None,
                "seconds": round(time.monotonic() - started, 3),
                "p50_ms": round(percentile(lat, 50), 3),
                "p99_ms": round(percentile(lat, 99), 3),
                "max_ms": round(max(lat, default=float("nan")), 3),
                "peak_streams": STATE["peak"],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["direct", "openai", "ws"], required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", default="")
    parser.add_argument("--model", default="bench/bench")
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--tokens", type=int, default=250)
    parser.add_argument("--ramp", type=float, default=1.0)
    asyncio.run(main(parser.parse_args()))
