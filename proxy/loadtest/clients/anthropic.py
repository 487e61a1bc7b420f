"""The Anthropic target: streaming `POST /v1/messages` on the proxy or any server of that API."""

from __future__ import annotations

from time import perf_counter
from typing import Any, Final

import aiohttp
import orjson

from proxy.loadtest.clients.base import WireClient, drain, http_error
from proxy.loadtest.config import LoadConfig
from proxy.loadtest.record import TRUNCATED, RequestRecord
from proxy.loadtest.sse_parser import SseParser

MAX_TOKENS: Final = 4096
"""Anthropic requires `max_tokens`; the load's answers are shaped by the model, well under it."""
FINISH: Final = {"end_turn": "stop", "max_tokens": "length", "tool_use": "tool_calls"}
"""`stop_reason` as the finish reasons of the other targets, so that reports compare."""


class AnthropicClient(WireClient):
    """`POST /v1/messages` with `stream: true`, as Claude Code and Anthropic's SDKs send it."""

    def __init__(self, config: LoadConfig, session: aiohttp.ClientSession) -> None:
        super().__init__(config, session)
        self.url = self.api_url("/v1/messages")
        self.headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            "anthropic-version": "2023-06-01",
            **config.headers,
        }

    async def request(self, rec: RequestRecord, prompt: str) -> None:
        body = orjson.dumps(
            {
                "model": self.config.agent,
                "max_tokens": MAX_TOKENS,
                "messages": [{"role": "user", "content": prompt}],
                "stream": True,
            }
        )
        async with self.session.post(self.url, data=body, headers=self.headers) as resp:
            rec.status = resp.status
            if resp.status != 200:
                await http_error(rec, resp)
                return
            parser = SseParser()
            content = resp.content
            while data := await content.readany():
                t = perf_counter()
                for etype, payload in parser.feed(data):
                    if etype == "content_block_delta":
                        rec.content(t)  # its body is never parsed
                    elif etype == "ping":
                        rec.heartbeats += 1
                    elif etype == "message_delta":
                        _message_delta(rec, orjson.loads(payload))
                    elif etype == "message_stop":
                        rec.ended = t
                        await drain(resp)
                        return
                    elif etype == "error":
                        rec.ended = t
                        error = orjson.loads(payload).get("error") or {}
                        rec.fail(str(error.get("type") or "stream_error"), error.get("message"))
                        await drain(resp)
                        return
            rec.ended = perf_counter()
            rec.fail(TRUNCATED, "stream closed without message_stop")


def _message_delta(rec: RequestRecord, event: Any) -> None:
    usage = event.get("usage") or {}
    rec.usage(usage.get("input_tokens"), usage.get("output_tokens"))
    reason = (event.get("delta") or {}).get("stop_reason")
    if isinstance(reason, str):
        rec.finish_reason = FINISH.get(reason, reason)
