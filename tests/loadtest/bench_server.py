"""A minimal, cheap HTTP/1.1 streaming server for measuring the load generator's own ceiling.

Speaks the SSE target (`POST /v1/agents/{agent}/stream`) and the OpenAI target
(`POST /v1/chat/completions`) with keep-alive and chunked encoding, on a raw asyncio protocol with
one timer per chunk, so that it costs a few microseconds per chunk and the client under test is
the bottleneck. The prompt is a script as in loadtest_fixture.py: `ttfb_ms`, `chunks`, `gap_ms`.

    python bench_server.py    # prints the base URL, serves until killed
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import cast

import orjson

_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


_SSE_START = _chunk(b'event: start\ndata: {"type":"start","stream_id":"s","seq":0}\n\n')
_SSE_DELTA = _chunk(
    b'id: 1\nevent: delta\ndata: {"type":"delta","stream_id":"s","seq":1,"text":"token "}\n\n'
)
_SSE_END = (
    _chunk(
        b'event: end\ndata: {"type":"end","stream_id":"s","seq":2,"finish_reason":"stop",'
        b'"usage":{"input_tokens":3,"output_tokens":1,"requests":1}}\n\n'
    )
    + b"0\r\n\r\n"
)
_OAI_DELTA = _chunk(
    b'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"m",'
    b'"choices":[{"index":0,"delta":{"content":"token "},"finish_reason":null}]}\n\n'
)
_OAI_END = (
    _chunk(
        b'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"m","choices":[],'
        b'"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}\n\ndata: [DONE]\n\n'
    )
    + b"0\r\n\r\n"
)


def _script(prompt: str) -> tuple[float, int, float]:
    vals = dict(part.partition("=")[::2] for part in prompt.split())
    ttfb, gap = float(vals.get("ttfb_ms", 0)) / 1000, float(vals.get("gap_ms", 0)) / 1000
    return ttfb, int(vals.get("chunks", 5)), gap


class StreamProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._next_request()

    def _next_request(self) -> None:
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self.buf[:head_end].decode("latin-1")
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(self.buf) < head_end + 4 + length:
            return
        body = orjson.loads(self.buf[head_end + 4 : head_end + 4 + length])
        self.buf = self.buf[head_end + 4 + length :]
        openai = "chat/completions" in head.split("\r\n", 1)[0]
        prompt = body["messages"][-1]["content"] if openai else body["prompt"]
        ttfb, chunks, gap = _script(prompt)
        self.busy = True
        assert self.transport is not None
        self.transport.write(_HEAD if openai else _HEAD + _SSE_START)
        delta, end = (_OAI_DELTA, _OAI_END) if openai else (_SSE_DELTA, _SSE_END)
        loop = asyncio.get_running_loop()

        def step(left: int) -> None:
            if self.transport is None:
                return
            if left == 0:
                self.transport.write(end)
                self.busy = False
                self.timer = None
                self._next_request()
                return
            self.transport.write(delta)
            self.timer = loop.call_later(gap, step, left - 1)

        self.timer = loop.call_later(ttfb, step, chunks)


async def serve() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(StreamProtocol, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with contextlib.suppress(KeyboardInterrupt), runner:
        runner.run(serve())
