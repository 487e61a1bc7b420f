"""SSE client helpers: what a client saw of one streamed answer, with arrival times."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from proxy.mock_upstream import MockServer

USER: Any = [{"role": "user", "content": "hello mock upstream"}]


@dataclass
class Streamed:
    """What a client saw of one SSE answer: `data:` payloads with their arrival times."""

    status: int
    headers: dict[str, str]
    started: float
    headers_at: float
    data: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    @property
    def chunks(self) -> list[dict[str, Any]]:
        return [orjson.loads(d) for d in self.data if d != "[DONE]"]

    @property
    def choice_chunks(self) -> list[dict[str, Any]]:
        return [c for c in self.chunks if c.get("choices")]

    @property
    def contents(self) -> list[str]:
        return [
            c["choices"][0]["delta"]["content"]
            for c in self.choice_chunks
            if c["choices"][0]["delta"].get("content") is not None
        ]

    @property
    def text(self) -> str:
        return "".join(self.contents)

    @property
    def done(self) -> bool:
        return bool(self.data) and self.data[-1] == "[DONE]"

    @property
    def finish_reasons(self) -> list[str]:
        return [
            c["choices"][0]["finish_reason"] for c in self.choice_chunks if c["choices"][0]["finish_reason"]
        ]


def chat_body(model: str, messages: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": USER if messages is None else messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    body.update(extra)
    return body


async def read_stream(response: aiohttp.ClientResponse, out: Streamed) -> Streamed:
    async for line in response.content:
        if line.startswith(b"data: "):
            out.times.append(time.perf_counter())
            out.data.append(line[6:].rstrip(b"\r\n").decode())
    return out


async def stream_chat(
    session: aiohttp.ClientSession,
    mock: MockServer,
    model: str,
    messages: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> Streamed:
    started = time.perf_counter()
    async with session.post(
        f"{mock.base_url}/chat/completions", json=chat_body(model, messages, **extra)
    ) as response:
        out = Streamed(response.status, dict(response.headers), started, time.perf_counter())
        return await read_stream(response, out)
