"""Server-Sent Events transport (protocol.md 3.2): `POST /v1/agents/{agent}/stream` and its `GET` twin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from proxy.engine import Engine
from proxy.events import Event
from proxy.observability.observer import Observer
from proxy.transports.body import BodyWriter
from proxy.transports.http import (
    ARRIVED_AT,
    STREAM_FIELDS,
    read_json_object,
    reject_unknown_fields,
    stream_context,
)
from proxy.transports.pump import Send, pump

if TYPE_CHECKING:
    from proxy.transports.resume import ResumeTransport
from proxy.transports.wire import encode_json

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def sse_writer(request: web.Request, response: web.StreamResponse, stream_id: str) -> Send:
    """A `send` that writes one stream's events as SSE frames; each `id:` is `<stream_id>:<seq>`,
    so that a reconnecting `EventSource` names the stream and the last event it has."""
    body = BodyWriter(request, response)
    prefix = stream_id.encode()

    async def send(event: Event) -> None:
        data = encode_json(event.to_dict())
        if event.seq is None:
            await body.write(b"event: %s\ndata: %s\n\n" % (event.type.encode(), data))
        else:
            await body.write(
                b"id: %s:%d\nevent: %s\ndata: %s\n\n" % (prefix, event.seq, event.type.encode(), data)
            )

    return send


async def prepare_sse(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    return response


class SSETransport:
    def __init__(
        self, engine: Engine, observer: Observer, heartbeat_interval: float, resume: ResumeTransport
    ) -> None:
        self._engine = engine
        self._observer = observer
        self._heartbeat = heartbeat_interval
        self._resume = resume

    async def post(self, request: web.Request) -> web.StreamResponse:
        agent = request.match_info["agent"]
        self._engine.check_agent(agent)
        body = await read_json_object(request)
        reject_unknown_fields(body, STREAM_FIELDS)
        return await self._stream(request, agent, body.get("prompt"), body.get("conversation_id"))

    async def get(self, request: web.Request) -> web.StreamResponse:
        agent = request.match_info["agent"]
        last_event_id = request.headers.get("Last-Event-ID")
        if last_event_id is not None:
            return await self._resume.reconnect(request, last_event_id)
        return await self._stream(
            request, agent, request.query.get("prompt"), request.query.get("conversation_id")
        )

    async def _stream(
        self, request: web.Request, agent: str, prompt: object, conversation_id: object
    ) -> web.StreamResponse:
        stream = await self._engine.open(agent, prompt, conversation_id, arrived_at=request.get(ARRIVED_AT))
        try:
            response = await prepare_sse(request)
        except BaseException:
            await stream.aclose()
            raise
        send = sse_writer(request, response, stream.id)
        ctx = stream_context(request, stream.id, agent, "sse")
        end = await pump(stream, send, ctx, self._observer, heartbeat_interval=self._heartbeat)
        if end is not None:
            await response.write_eof()
        return response
