"""The SSE target: `POST /v1/agents/{agent}/stream`, events framed as in protocol.md 3.2."""

from __future__ import annotations

from time import perf_counter
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from proxy.loadtest.clients.base import (
    CONTENT_EVENTS,
    PARSED_EVENTS,
    WireClient,
    drain,
    handle_event,
    http_error,
)
from proxy.loadtest.config import LoadConfig
from proxy.loadtest.record import TRUNCATED, RequestRecord
from proxy.loadtest.sse_parser import SseParser


class SseClient(WireClient):
    """`POST /v1/agents/{agent}/stream`, protocol.md 3.2 framing."""

    def __init__(self, config: LoadConfig, session: aiohttp.ClientSession) -> None:
        super().__init__(config, session)
        self.url = f"{self.base}/v1/agents/{quote(config.agent, safe='')}/stream"
        self.headers = {"Content-Type": "application/json", "Accept": "text/event-stream", **config.headers}

    async def request(self, rec: RequestRecord, prompt: str) -> None:
        body = orjson.dumps({"prompt": prompt})
        async with self.session.post(self.url, data=body, headers=self.headers) as resp:
            rec.status = resp.status
            if resp.status != 200:
                await http_error(rec, resp)
                return
            parser = SseParser()
            content = resp.content
            while True:
                data = await content.readany()
                t = perf_counter()
                if not data:
                    break
                for etype, payload in parser.feed(data):
                    if etype in CONTENT_EVENTS:  # the hot path: time it, never parse it
                        rec.content(t)
                        continue
                    obj: Any = None
                    if etype in PARSED_EVENTS:
                        obj = orjson.loads(payload)
                        if not etype:
                            etype = str(obj.get("type", ""))
                    if handle_event(rec, etype, t, obj):
                        await drain(resp)
                        return
            rec.ended = perf_counter()
            rec.fail(TRUNCATED, "SSE stream closed without an end event")
