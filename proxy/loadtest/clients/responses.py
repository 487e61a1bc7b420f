"""The Responses target: streaming `POST /v1/responses` on the proxy or any server of that API."""

from __future__ import annotations

from time import perf_counter
from typing import Any

import aiohttp
import orjson

from proxy.loadtest.clients.base import WireClient, drain, http_error
from proxy.loadtest.config import LoadConfig
from proxy.loadtest.record import TRUNCATED, RequestRecord
from proxy.loadtest.sse_parser import COMMENT, SseParser

CONTENT = frozenset({"response.output_text.delta", "response.function_call_arguments.delta"})
"""Events timed as content; their bodies are never parsed."""
ENDS = frozenset({"response.completed", "response.incomplete", "response.failed", "error"})


class ResponsesClient(WireClient):
    """`POST /v1/responses` with `stream: true` and `store: false` (a load test keeps no history)."""

    def __init__(self, config: LoadConfig, session: aiohttp.ClientSession) -> None:
        super().__init__(config, session)
        self.url = self.api_url("/v1/responses")
        self.headers = {"Content-Type": "application/json", "Accept": "text/event-stream", **config.headers}

    async def request(self, rec: RequestRecord, prompt: str) -> None:
        body = orjson.dumps({"model": self.config.agent, "input": prompt, "stream": True, "store": False})
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
                    if etype in CONTENT:
                        rec.content(t)
                    elif etype == COMMENT:
                        rec.heartbeats += 1
                    elif etype in ENDS:
                        rec.ended = t
                        _ended(rec, etype, orjson.loads(payload))
                        await drain(resp)
                        return
            rec.ended = perf_counter()
            rec.fail(TRUNCATED, "stream closed without response.completed")


def _ended(rec: RequestRecord, etype: str, event: Any) -> None:
    """Apply the event that ends a response: its usage and finish, or its failure."""
    response = event.get("response") or {}
    if etype == "error" or etype == "response.failed":
        error = response.get("error") if etype == "response.failed" else event
        error = error if isinstance(error, dict) else {}
        rec.fail(str(error.get("code") or "stream_error"), error.get("message"))
        return
    usage = response.get("usage") or {}
    rec.usage(usage.get("input_tokens"), usage.get("output_tokens"))
    calls = any(item.get("type") == "function_call" for item in response.get("output") or ())
    rec.finish_reason = "length" if etype == "response.incomplete" else "tool_calls" if calls else "stop"
