"""Server-Sent Events transport (DESIGN 3.2): `POST /v1/agents/{agent}/stream` and its `GET` twin."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web

from proxy.engine import Engine, Stream
from proxy.events import Event
from proxy.observability.observer import Observer, StreamContext
from proxy.transports.body import BodyWriter
from proxy.transports.http import ARRIVED_AT, read_json_object, stream_context
from proxy.transports.pump import pump
from proxy.transports.wire import encode_json

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
KEEPALIVE = b": keepalive\n\n"
"""The heartbeat of SSE protocols that have no event for it: a comment, which every SSE parser skips."""


async def stream_sse(
    request: web.Request,
    stream: Stream,
    ctx: StreamContext,
    observer: Observer,
    heartbeat_interval: float,
    encode: Callable[[Event], bytes],
    headers: Mapping[str, str] = SSE_HEADERS,
) -> web.StreamResponse:
    """Answer `request` with `stream` as SSE, each event written as `encode` frames it (b"": nothing)."""
    response = web.StreamResponse(headers=headers)
    try:
        await response.prepare(request)
    except BaseException:
        await stream.aclose()
        raise
    body = BodyWriter(request, response)

    async def send(event: Event) -> None:
        data = encode(event)
        # An empty piece would be the chunked encoding's last chunk: the end of the body.
        if data:
            await body.write(data)

    end = await pump(stream, send, ctx, observer, heartbeat_interval=heartbeat_interval)
    if end is not None:
        await response.write_eof()
    return response


def encode_sse(event: Event) -> bytes:
    data = encode_json(event.to_dict())
    if event.seq is None:
        return b"event: %s\ndata: %s\n\n" % (event.type.encode(), data)
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.seq, event.type.encode(), data)


class SSETransport:
    def __init__(self, engine: Engine, observer: Observer, heartbeat_interval: float) -> None:
        self._engine = engine
        self._observer = observer
        self._heartbeat = heartbeat_interval

    async def post(self, request: web.Request) -> web.StreamResponse:
        agent = request.match_info["agent"]
        self._engine.check_agent(agent)
        body = await read_json_object(request)
        return await self._stream(request, agent, body.get("prompt"), body.get("conversation_id"))

    async def get(self, request: web.Request) -> web.StreamResponse:
        agent = request.match_info["agent"]
        return await self._stream(
            request, agent, request.query.get("prompt"), request.query.get("conversation_id")
        )

    async def _stream(
        self, request: web.Request, agent: str, prompt: object, conversation_id: object
    ) -> web.StreamResponse:
        stream = self._engine.open(agent, prompt, conversation_id, arrived_at=request.get(ARRIVED_AT))
        ctx = stream_context(request, stream.id, agent, "sse")
        return await stream_sse(request, stream, ctx, self._observer, self._heartbeat, encode_sse)
