"""Server-Sent Events transport (DESIGN 3.2): `POST /v1/agents/{agent}/stream` and its `GET` twin."""

from __future__ import annotations

from aiohttp import web

from proxy.engine import Engine
from proxy.events import Event
from proxy.observability.observer import Observer
from proxy.transports.body import BodyWriter
from proxy.transports.http import ARRIVED_AT, CALLER, read_json_object, stream_context
from proxy.transports.pump import pump
from proxy.transports.wire import encode_json

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


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
        stream = await self._engine.open(
            agent, prompt, conversation_id, arrived_at=request.get(ARRIVED_AT), caller=request.get(CALLER)
        )
        response = web.StreamResponse(headers=SSE_HEADERS)
        try:
            await response.prepare(request)
        except BaseException:
            await stream.aclose()
            raise

        body = BodyWriter(request, response)

        async def send(event: Event) -> None:
            await body.write(encode_sse(event))

        ctx = stream_context(request, stream.id, agent, "sse")
        end = await pump(stream, send, ctx, self._observer, heartbeat_interval=self._heartbeat)
        if end is not None:
            await response.write_eof()
        return response
