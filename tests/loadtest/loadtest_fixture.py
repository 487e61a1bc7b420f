"""A scripted streaming server speaking the three wire formats the load generator consumes.

The prompt is the script: space-separated `key=value` pairs, e.g. `ttfb_ms=50 chunks=5 gap_ms=10`.

    ttfb_ms    delay after `start` before the first content event      (default 0)
    chunks     content events to send                                  (default 5)
    gap_ms     delay between content events                            (default 0)
    heartbeat  heartbeats sent before the first content event          (default 0)
    retry      retry events sent before the first content event        (default 0)
    error      after the chunks, an error event with this code (+ end); openai: an error chunk
    truncate   1: after the chunks, close without end / [DONE]
    stall      1: after the chunks, send nothing more and keep the stream open
    status     answer this HTTP status with a JSON error body instead of a stream
    output     1: `output` events instead of `delta` (SSE, WS)
    tokens     output tokens reported in usage                          (default: chunks)
    close_ws   1: WS only, close the whole socket after the chunks
    restart    send this many deltas, then `retry` with `discard: true`, then the script's chunks

Run it standalone (`python loadtest_fixture.py`) to serve on a free port printed on stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Script:
    ttfb_ms: float = 0.0
    chunks: int = 5
    gap_ms: float = 0.0
    heartbeat: int = 0
    retry: int = 0
    error: str | None = None
    truncate: bool = False
    stall: bool = False
    status: int | None = None
    output: bool = False
    tokens: int | None = None
    close_ws: bool = False
    restart: int = 0

    @classmethod
    def parse(cls, prompt: str) -> Script:
        s = cls()
        for part in prompt.split():
            key, _, value = part.partition("=")
            if key in ("ttfb_ms", "gap_ms"):
                setattr(s, key, float(value))
            elif key in ("chunks", "heartbeat", "retry", "status", "tokens", "restart"):
                setattr(s, key, int(value))
            elif key in ("truncate", "stall", "output", "close_ws"):
                setattr(s, key, value not in ("0", ""))
            elif key == "error":
                s.error = value
        return s


@dataclass
class Stats:
    """What the fixture saw, for assertions."""

    requests: int = 0
    ws_connections: int = 0
    active: int = 0
    max_active: int = 0
    prompts: list[str] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)

    def enter(self, prompt: str) -> None:
        self.requests += 1
        self.prompts.append(prompt)
        self.active += 1
        self.max_active = max(self.max_active, self.active)

    def leave(self) -> None:
        self.active -= 1


STATS = web.AppKey("stats", Stats)


@dataclass
class Fixture:
    """A running fixture server, as the tests see it."""

    url: str
    stats: Stats


async def _sleep_ms(ms: float) -> None:
    if ms > 0:
        await asyncio.sleep(ms / 1000.0)


async def events(script: Script, agent: str) -> Any:
    """The protocol.md 3.1 events of one scripted stream, as (type, body) pairs, with the script's pauses."""
    seq = 0

    def ev(etype: str, **body: Any) -> tuple[str, dict[str, Any]]:
        nonlocal seq
        out: dict[str, Any] = {"type": etype, "stream_id": "s1", **body}
        if etype != "heartbeat":
            out["seq"] = seq
            seq += 1
        return etype, out

    yield ev("start", agent=agent, model="fixture", conversation_id=None, created_at=0.0)
    for _ in range(script.heartbeat):
        yield ev("heartbeat", ts=0.0)
    for attempt in range(script.retry):
        yield ev(
            "retry",
            attempt=attempt + 1,
            max_attempts=script.retry + 1,
            reason="fixture",
            delay_s=0.0,
            discard=False,
        )
    await _sleep_ms(script.ttfb_ms)
    if script.restart:
        for i in range(script.restart):
            yield ev("delta", text=f"x{i} ")
        yield ev("retry", attempt=1, max_attempts=2, reason="fixture", delay_s=0.0, discard=True)
    for i in range(script.chunks):
        if i:
            await _sleep_ms(script.gap_ms)
        if script.output:
            yield ev("output", data={"n": i}, partial=i < script.chunks - 1)
        else:
            yield ev("delta", text=f"w{i} ")
    if script.truncate:
        return
    if script.stall:
        await asyncio.sleep(3600)
    tokens = script.tokens if script.tokens is not None else script.chunks
    usage = {"input_tokens": 3, "output_tokens": tokens, "requests": 1}
    if script.error:
        yield ev("error", code=script.error, message="scripted failure", retryable=False)
        yield ev(
            "end",
            finish_reason="error",
            text="",
            usage=usage,
            attempts=1,
            ttft_s=0.0,
            duration_s=0.0,
            conversation_id=None,
        )
        return
    yield ev(
        "end",
        finish_reason="stop",
        text="",
        usage=usage,
        attempts=1,
        ttft_s=0.0,
        duration_s=0.0,
        conversation_id=None,
    )


def _error_response(status: int) -> web.Response:
    return web.json_response({"error": {"code": "scripted", "message": f"scripted {status}"}}, status=status)


async def _start_sse(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    return resp


async def sse_stream(request: web.Request) -> web.StreamResponse:
    stats: Stats = request.app[STATS]
    body = await request.json()
    script = Script.parse(body["prompt"])
    stats.enter(body["prompt"])
    try:
        if script.status:
            return _error_response(script.status)
        resp = await _start_sse(request)
        async for etype, obj in events(script, request.match_info["agent"]):
            seq = f"id: {obj['seq']}\n" if "seq" in obj else ""
            await resp.write(f"{seq}event: {etype}\ndata: ".encode() + orjson.dumps(obj) + b"\n\n")
        if script.truncate:
            # Drop the connection mid-stream: no end event, no chunked terminator.
            assert request.transport is not None
            request.transport.close()
            return resp
        await resp.write_eof()
        return resp
    finally:
        stats.leave()


def _chunk(content: str | None = None, *, role: bool = False, finish: str | None = None) -> bytes:
    delta: dict[str, Any] = {}
    if role:
        delta = {"role": "assistant", "content": ""}
    elif content is not None:
        delta = {"content": content}
    obj = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fixture",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(obj) + b"\n\n"


async def chat_completions(request: web.Request) -> web.StreamResponse:
    stats: Stats = request.app[STATS]
    body = await request.json()
    prompt = body["messages"][-1]["content"]
    script = Script.parse(prompt)
    stats.enter(prompt)
    try:
        if script.status:
            return _error_response(script.status)
        resp = await _start_sse(request)
        await resp.write(_chunk(role=True))
        for _ in range(script.heartbeat):
            await resp.write(b": keepalive\n\n")
        await _sleep_ms(script.ttfb_ms)
        for i in range(script.chunks):
            if i:
                await _sleep_ms(script.gap_ms)
            await resp.write(_chunk(f"w{i} "))
        if script.truncate:
            # OpenAI-style streams end with the terminating chunk; this one just stops.
            await resp.write_eof()
            return resp
        if script.stall:
            await asyncio.sleep(3600)
        if script.error:
            err = {"error": {"message": "scripted failure", "type": "server_error", "code": script.error}}
            await resp.write(b"data: " + orjson.dumps(err) + b"\n\n")
            await resp.write_eof()
            return resp
        await resp.write(_chunk(finish="stop"))
        tokens = script.tokens if script.tokens is not None else script.chunks
        usage = {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "fixture",
            "choices": [],
            "usage": {"prompt_tokens": 3, "completion_tokens": tokens, "total_tokens": tokens + 3},
        }
        await resp.write(b"data: " + orjson.dumps(usage) + b"\n\ndata: [DONE]\n\n")
        await resp.write_eof()
        return resp
    finally:
        stats.leave()


async def websocket(request: web.Request) -> web.WebSocketResponse:
    stats: Stats = request.app[STATS]
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    stats.ws_connections += 1
    lock = asyncio.Lock()
    tasks: dict[str, asyncio.Task[None]] = {}

    async def send(obj: dict[str, Any]) -> None:
        async with lock:
            await ws.send_str(orjson.dumps(obj).decode())

    async def serve(rid: str, agent: str, prompt: str) -> None:
        script = Script.parse(prompt)
        script.truncate = script.truncate or script.close_ws
        stats.enter(prompt)
        try:
            async for _, obj in events(script, agent):
                await send({**obj, "request_id": rid})
            if script.truncate:
                await ws.close()
        finally:
            stats.leave()
            tasks.pop(rid, None)

    try:
        async for msg in ws:
            frame = orjson.loads(msg.data)
            if frame.get("type") == "prompt":
                rid = frame["request_id"]
                tasks[rid] = asyncio.create_task(serve(rid, frame["agent"], frame["prompt"]))
            elif frame.get("type") == "cancel":
                stats.cancels.append(frame["request_id"])
                task = tasks.pop(frame["request_id"], None)
                if task is not None:
                    task.cancel()
            elif frame.get("type") == "ping":
                await send({"type": "pong"})
    finally:
        for task in list(tasks.values()):
            task.cancel()
    return ws


def make_app() -> web.Application:
    app = web.Application()
    app[STATS] = Stats()
    app.router.add_post("/v1/agents/{agent}/stream", sse_stream)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/ws", websocket)
    return app


async def _serve_forever() -> None:
    runner = web.AppRunner(make_app(), handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"http://127.0.0.1:{port}", flush=True)
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.Event().wait()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever())
    sys.exit(0)
