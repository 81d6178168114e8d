"""A local OpenAI-compatible upstream for the LLM bench: every stream emits ``--rate`` tokens/s.

Raw asyncio HTTP/1.1 (keep-alive, chunked), no framework, so that the upstream's own cost
stays small and equal across the compared paths. Each token's text is the wall-clock time it
was sent (``"1733412345.123456 "``), so a reader anywhere computes its latency. A request's
``max_tokens`` is the number of tokens it gets.

    python -m bench.llm.upstream --port 9100 --rate 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    b"transfer-encoding: chunked\r\ncache-control: no-cache\r\n\r\n"
)
CHUNK = (
    '{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":0,"model":"bench",'
    '"choices":[{"index":0,"delta":{"content":"%s"},"finish_reason":null}]}'
)
ROLE = (
    '{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":0,"model":"bench",'
    '"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}'
)
END = (
    '{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":0,"model":"bench",'
    '"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'
)
USAGE = (
    '{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":0,"model":"bench",'
    '"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":%d,"total_tokens":%d}}'
)
MODELS = (
    b'{"object":"list","data":[{"id":"bench","object":"model","created":0,"owned_by":"bench"}]}'
)


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(payload: str) -> bytes:
    return _chunked(b"data: " + payload.encode() + b"\n\n")


async def _answer(writer: asyncio.StreamWriter, tokens: int, rate: float) -> None:
    writer.write(HEAD + _event(ROLE))
    start = time.monotonic()
    for i in range(tokens):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        writer.write(_event(CHUNK % f"{time.time():.6f} "))
        if writer.transport.get_write_buffer_size() > 1 << 16:
            await writer.drain()
    writer.write(
        _event(END) + _event(USAGE % (tokens, tokens + 1)) + _event("[DONE]") + b"0\r\n\r\n"
    )
    await writer.drain()


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rate: float) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            body = await reader.readexactly(length) if length else b""
            if method == "GET" and path.endswith("/models"):
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(MODELS), MODELS)
                )
                await writer.drain()
                continue
            request = json.loads(body or b"{}")
            await _answer(writer, int(request.get("max_tokens") or 100), rate)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int, rate: float) -> None:
    server = await asyncio.start_server(
        lambda r, w: _serve(r, w, rate), "127.0.0.1", port, backlog=4096
    )
    print(json.dumps({"event": "ready", "port": port}), flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=50.0)
    args = parser.parse_args()
    asyncio.run(main(args.port, args.rate))
