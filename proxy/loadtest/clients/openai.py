"""The OpenAI target: streaming `POST /v1/chat/completions` on the proxy or any compatible server."""

from __future__ import annotations

from time import perf_counter
from typing import Any

import aiohttp
import orjson

from proxy.loadtest.clients.base import WireClient, drain, http_error
from proxy.loadtest.config import LoadConfig
from proxy.loadtest.record import TRUNCATED, RequestRecord
from proxy.loadtest.sse_parser import COMMENT, SseParser


class OpenAIClient(WireClient):
    """`POST /v1/chat/completions` with `stream: true`; any OpenAI-compatible server (the baseline)."""

    def __init__(self, config: LoadConfig, session: aiohttp.ClientSession) -> None:
        super().__init__(config, session)
        self.url = self.api_url("/v1/chat/completions")
        self.headers = {"Content-Type": "application/json", "Accept": "text/event-stream", **config.headers}

    async def request(self, rec: RequestRecord, prompt: str) -> None:
        body = orjson.dumps(
            {
                "model": self.config.agent,
                "messages": [{"role": "user", "content": prompt}],
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )
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
                    if etype == COMMENT:
                        rec.heartbeats += 1
                        continue
                    if payload == b"[DONE]":
                        rec.ended = t
                        await drain(resp)
                        return
                    if self._chunk(rec, orjson.loads(payload), t):
                        await drain(resp)
                        return
            rec.ended = perf_counter()
            rec.fail(TRUNCATED, "stream closed without data: [DONE]")

    @staticmethod
    def _chunk(rec: RequestRecord, obj: Any, t: float) -> bool:
        """Apply one `chat.completion.chunk`; True when it was an in-stream error (the stream is over)."""
        if not isinstance(obj, dict):
            raise ValueError("chunk is not a JSON object")
        err = obj.get("error")
        if err is not None:
            rec.ended = t
            if isinstance(err, dict):
                code = err.get("code") or err.get("type")
                message = err.get("message")
                rec.fail(str(code) if code else "stream_error", message if isinstance(message, str) else None)
            else:
                rec.fail("stream_error", str(err))
            return True
        choices = obj.get("choices")
        if choices:
            choice = choices[0]
            delta = choice.get("delta")
            if delta and (
                delta.get("content")
                or delta.get("tool_calls")
                or delta.get("refusal")
                or delta.get("reasoning_content")
            ):
                rec.content(t)
            reason = choice.get("finish_reason")
            if reason:
                rec.finish_reason = reason
        usage = obj.get("usage")
        if usage:
            rec.usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))
        return False
