"""Server-Sent Events transport (docs/protocol.md): `POST /v1/agents/{agent}/stream` and its `GET` twin."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from proxy.engine import Engine
from proxy.engine.inputs import ChatMessage
from proxy.events import Event
from proxy.observability.observer import Observer, StreamContext, Transport
from proxy.transports.body import BodyWriter
from proxy.transports.http import (
    ARRIVED_AT,
    CALLER,
    STREAM_FIELDS,
    read_json_object,
    reject_unknown_fields,
    stream_context,
)
from proxy.transports.pump import close_events, pump
from proxy.transports.wire import encode_json

if TYPE_CHECKING:
    from proxy.transports.resume import ResumeTransport

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
Encoder = Callable[[Event], bytes]
"""One event as the bytes of its wire (b"": nothing to write)."""
KEEPALIVE = b": keepalive\n\n"
"""The heartbeat of SSE protocols that have no event for it: a comment, which every SSE parser skips."""


async def stream_sse(
    request: web.Request,
    events: AsyncIterator[Event],
    ctx: StreamContext,
    observer: Observer,
    heartbeat_interval: float,
    encode: Encoder,
    headers: Mapping[str, str] = SSE_HEADERS,
    measure: bool = True,
) -> web.StreamResponse:
    """Answer `request` with a stream's `events` as SSE, each written as `encode` frames it
    (`measure`: as in `pump`)."""
    response = web.StreamResponse(headers=headers)
    try:
        await response.prepare(request)
    except BaseException:
        await close_events(events)
        raise
    body = BodyWriter(request, response)

    async def send(event: Event) -> None:
        data = encode(event)
        # An empty piece would be the chunked encoding's last chunk: the end of the body.
        if data:
            await body.write(data)

    end = await pump(events, send, ctx, observer, heartbeat_interval=heartbeat_interval, measure=measure)
    if end is not None:
        await body.end()
    return response


_EVENT_NAMES = {"delta": b"delta", "heartbeat": b"heartbeat"}
"""The SSE `event:` names of the events a stream sends most, encoded once."""


def sse_encoder(stream_id: str) -> Encoder:
    """The proxy's own events as SSE frames; each `id:` is `<stream_id>:<seq>`, so that a
    reconnecting `EventSource` names the stream and the last event it has."""
    prefix = stream_id.encode()

    def encode(event: Event) -> bytes:
        data = encode_json(event.to_dict())
        name = _EVENT_NAMES.get(event.type) or event.type.encode()
        if event.seq is None:
            return b"event: %s\ndata: %s\n\n" % (name, data)
        return b"id: %s:%d\nevent: %s\ndata: %s\n\n" % (prefix, event.seq, name, data)

    return encode


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
        stream = await self._engine.open(
            agent, prompt, conversation_id, arrived_at=request.get(ARRIVED_AT), caller=request.get(CALLER)
        )
        ctx = stream_context(request, stream.id, agent, "sse")
        encode = sse_encoder(stream.id)
        return await stream_sse(request, stream, ctx, self._observer, self._heartbeat, encode)


@dataclass(frozen=True, slots=True)
class ChatProtocol:
    """A UI protocol over SSE: how its body becomes chat messages and its stream's encoder."""

    transport: Transport
    parse: Callable[[dict[str, Any]], tuple[list[ChatMessage], Callable[[str], Encoder]]]
    """The request body -> the messages, and a factory of the encoder for a stream id."""
    headers: Mapping[str, str] = field(default_factory=lambda: SSE_HEADERS)


class ChatSSETransport:
    """`POST /v1/agents/{agent}/<protocol>` for a UI protocol whose client keeps the history and can
    drop discarded content (so the agent's `mid_stream = "restart"` applies)."""

    def __init__(
        self, engine: Engine, observer: Observer, heartbeat_interval: float, protocol: ChatProtocol
    ) -> None:
        self._engine = engine
        self._observer = observer
        self._heartbeat = heartbeat_interval
        self._protocol = protocol

    async def post(self, request: web.Request) -> web.StreamResponse:
        agent = request.match_info["agent"]
        self._engine.check_agent(agent)
        messages, encoder = self._protocol.parse(await read_json_object(request))
        stream = await self._engine.open_chat(
            agent, messages, arrived_at=request.get(ARRIVED_AT), caller=request.get(CALLER), discards=True
        )
        ctx = stream_context(request, stream.id, agent, self._protocol.transport)
        encode = encoder(stream.id)
        return await stream_sse(
            request, stream, ctx, self._observer, self._heartbeat, encode, self._protocol.headers
        )
