"""Resuming a stream (docs/protocol.md) over SSE: `GET /v1/streams/{stream_id}` after `Last-Event-ID` or
`?after=<seq>`, and the `GET` stream endpoint when a browser's `EventSource` reconnects with
`Last-Event-ID`. Every event after the client's last one, then live to `end`, on any process.

A resumed stream is not a new request for the metrics: its events go to no observer (the stream's
own request counted them), and `agent_proxy_resumes_total` counts the resumption.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from proxy.engine import Engine
from proxy.engine.refusals import UnknownStream
from proxy.errors import RequestError
from proxy.events import Event
from proxy.observability.observer import Observers
from proxy.transports.http import CALLER, stream_context
from proxy.transports.sse import sse_encoder, stream_sse

NOBODY = Observers()


def parse_event_id(value: str) -> tuple[str, int] | None:
    """`<stream_id>:<seq>` (an SSE `id:` line) -> (stream_id, seq), None if it is not one."""
    stream_id, sep, seq = value.rpartition(":")
    if not sep or not stream_id or not seq.isdigit():
        return None
    return stream_id, int(seq)


class ResumeTransport:
    def __init__(self, engine: Engine, heartbeat_interval: float) -> None:
        self._engine = engine
        self._heartbeat = heartbeat_interval

    async def get(self, request: web.Request) -> web.StreamResponse:
        stream_id = request.match_info["stream_id"]
        after = self._after(request, stream_id)
        events = await self._engine.resume(stream_id, after, request.get(CALLER))
        return await self.replay(request, stream_id, events)

    async def reconnect(self, request: web.Request, last_event_id: str) -> web.StreamResponse:
        """A reconnecting `EventSource`: the rest of its stream, or 204, which tells the browser to
        stop reconnecting (a second paid run of the prompt is never started this way)."""
        parsed = parse_event_id(last_event_id)
        if parsed is None:
            return web.Response(status=204)
        try:
            events = await self._engine.resume(*parsed, request.get(CALLER))
        except UnknownStream:
            return web.Response(status=204)
        return await self.replay(request, parsed[0], events)

    def _after(self, request: web.Request, stream_id: str) -> int:
        header = request.headers.get("Last-Event-ID")
        if header is not None:
            parsed = parse_event_id(header)
            if parsed is None or parsed[0] != stream_id:
                raise RequestError(
                    400, "invalid_last_event_id", "`Last-Event-ID` must be `<stream_id>:<seq>` of this stream"
                )
            return parsed[1]
        after = request.query.get("after", "-1")
        try:
            value = int(after)
        except ValueError:
            value = -2
        if value < -1:
            raise RequestError(400, "invalid_after", "`after` must be a seq (an integer >= -1)")
        return value

    async def replay(
        self, request: web.Request, stream_id: str, events: AsyncIterator[Event]
    ) -> web.StreamResponse:
        ctx = stream_context(request, stream_id, "", "sse")
        encode = sse_encoder(stream_id)
        return await stream_sse(request, events, ctx, NOBODY, self._heartbeat, encode, measure=False)
