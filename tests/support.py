"""Test clients that speak the proxy's wires as a user's client would, recording arrival times."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson


def free_port() -> int:
    """A port of 127.0.0.1 that was free a moment ago (for programs that cannot take port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class SSEEvent:
    event: str
    data: dict[str, Any]
    id: str | None
    at: float


@dataclass
class SSEResult:
    status: int
    headers: dict[str, str]
    events: list[SSEEvent] = field(default_factory=list)
    body: Any = None

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e.data for e in self.events if e.event == kind]

    def types(self, *, heartbeats: bool = False) -> list[str]:
        return [e.event for e in self.events if heartbeats or e.event != "heartbeat"]

    @property
    def end(self) -> dict[str, Any]:
        return self.of("end")[-1]

    def text_after_last_discard(self) -> str:
        return text_after_last_discard([e.data for e in self.events])


def text_after_last_discard(events: list[dict[str, Any]]) -> str:
    """The `delta` texts after the last `retry` with `discard: true`: what a client shows in the end."""
    parts: list[str] = []
    for e in events:
        if e["type"] == "retry" and e["discard"]:
            parts.clear()
        elif e["type"] == "delta":
            parts.append(e["text"])
    return "".join(parts)


def parse_sse_block(block: bytes, at: float) -> SSEEvent | None:
    event, data, event_id = "message", b"", None
    for line in block.split(b"\n"):
        if line.startswith(b"event: "):
            event = line[7:].decode()
        elif line.startswith(b"data: "):
            data = line[6:]
        elif line.startswith(b"id: "):
            event_id = line[4:].decode()
    if not data:
        return None
    return SSEEvent(event, orjson.loads(data), event_id, at)


async def read_sse(resp: aiohttp.ClientResponse, stop_after: int | None = None) -> SSEResult:
    result = SSEResult(resp.status, dict(resp.headers))
    if resp.content_type != "text/event-stream":
        result.body = await resp.json(content_type=None)
        return result
    buf = b""
    async for chunk in resp.content.iter_any():
        buf += chunk
        while b"\n\n" in buf:
            block, buf = buf.split(b"\n\n", 1)
            ev = parse_sse_block(block, time.monotonic())
            if ev is not None:
                result.events.append(ev)
                if stop_after is not None and len(result.events) >= stop_after:
                    return result
    return result


async def read_sse_data(resp: aiohttp.ClientResponse) -> list[tuple[bytes, float]]:
    """The `data:` of every SSE block of a protocol without `event:` lines (Vercel AI, AG-UI), with
    its arrival time; comments (heartbeats) are left out."""
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/event-stream"
    out: list[tuple[bytes, float]] = []
    buf = b""
    async for chunk in resp.content.iter_any():
        buf += chunk
        while b"\n\n" in buf:
            block, buf = buf.split(b"\n\n", 1)
            if block.startswith(b"data: "):
                out.append((block[6:], time.monotonic()))
    assert buf == b"", buf
    return out


UI_BODIES: dict[str, dict[str, Any]] = {
    "vercel-ai": {
        "id": "c",
        "messages": [{"id": "u", "role": "user", "parts": [{"type": "text", "text": "hi"}]}],
    },
    "ag-ui": {"threadId": "t", "runId": "r", "messages": [{"id": "u", "role": "user", "content": "hi"}]},
}
"""A one-prompt body for each UI protocol endpoint (`/v1/agents/{agent}/<key>`)."""


async def post_stream(
    session: aiohttp.ClientSession, base: str, agent: str, prompt: str, **body: Any
) -> SSEResult:
    async with session.post(f"{base}/v1/agents/{agent}/stream", json={"prompt": prompt, **body}) as resp:
        return await read_sse(resp)


def assert_stream_invariants(events: list[dict[str, Any]], *, client_gone: bool = False) -> None:
    """protocol.md 3.1: one start first, one end last, seq without gaps, deltas concatenate to end.text."""
    public = [e for e in events if e["type"] != "heartbeat"]
    assert public[0]["type"] == "start", public[0]
    assert [e["type"] for e in public].count("start") == 1
    if not client_gone:
        assert public[-1]["type"] == "end", public[-1]
        assert [e["type"] for e in public].count("end") == 1
    assert [e["seq"] for e in public] == list(range(len(public)))
    assert all("seq" not in e for e in events if e["type"] == "heartbeat")
    stream_ids = {e["stream_id"] for e in events}
    assert len(stream_ids) == 1, stream_ids
    if not client_gone and public[-1].get("text") is not None:
        assert text_after_last_discard(public) == public[-1]["text"]
