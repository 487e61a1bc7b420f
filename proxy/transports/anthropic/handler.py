"""The `POST /v1/messages` and `/v1/messages/count_tokens` handlers: parse, open the engine's
stream, and write it as Anthropic's events (`stream: true`) or collect it into one `message`."""

from __future__ import annotations

from aiohttp import web

from proxy.engine import Engine, Stream
from proxy.engine.refusals import ForbiddenAgent, Refused
from proxy.errors import RequestError
from proxy.events import Delta, End, Error, Event, Heartbeat, Output, Start
from proxy.observability.observer import Observer
from proxy.transports.anthropic.count import count_tokens
from proxy.transports.anthropic.errors import error_event, failure_response, request_error_response
from proxy.transports.anthropic.events import PING, MessageEvents, message
from proxy.transports.anthropic.request import MessagesRequest, parse_count_request, parse_messages_request
from proxy.transports.collect import collect, stream_error
from proxy.transports.http import ARRIVED_AT, CALLER, read_json_object, stream_context
from proxy.transports.refusal_lines import REQUESTED_AGENT
from proxy.transports.sse import stream_sse
from proxy.transports.wire import encode_json


class AnthropicTransport:
    def __init__(self, engine: Engine, observer: Observer, heartbeat_interval: float) -> None:
        self._engine = engine
        self._observer = observer
        self._heartbeat = heartbeat_interval

    async def messages(self, request: web.Request) -> web.StreamResponse:
        try:
            parsed = parse_messages_request(await read_json_object(request))
            request[REQUESTED_AGENT] = parsed.model
            stream = await self._engine.open_chat(
                parsed.model,
                parsed.messages,
                parsed.options,
                tools=parsed.tools,
                response_format=parsed.response_format,
                arrived_at=request.get(ARRIVED_AT),
                caller=request.get(CALLER),
                client_system=True,
            )
        except (RequestError, Refused) as exc:
            return request_error_response(exc)
        if parsed.stream:
            return await self._stream(request, parsed, stream)
        return await self._complete(request, parsed, stream)

    async def count_tokens(self, request: web.Request) -> web.Response:
        try:
            body = await read_json_object(request)
            model = parse_count_request(body)
            request[REQUESTED_AGENT] = model
            agent = self._engine.resolve_agent(model)
            caller = request.get(CALLER)
            if caller is not None and not caller.identity.may_use(agent):
                raise ForbiddenAgent(f"this key may not use agent {agent!r}")
        except (RequestError, Refused) as exc:
            return request_error_response(exc)
        return web.Response(
            body=encode_json({"input_tokens": count_tokens(body)}), content_type="application/json"
        )

    async def _stream(
        self, request: web.Request, parsed: MessagesRequest, stream: Stream
    ) -> web.StreamResponse:
        events = MessageEvents(f"msg_{stream.id}", parsed.model)
        failed = False

        def encode(event: Event) -> bytes:
            nonlocal failed
            if isinstance(event, Delta):
                return events.text(event.text)
            if isinstance(event, Heartbeat):
                return PING
            if isinstance(event, Start):
                return events.start()
            if isinstance(event, Output):
                return b"" if event.partial else events.text(encode_json(event.data).decode())
            if isinstance(event, Error):
                failed = True
                return error_event(event)
            if isinstance(event, End) and not failed:
                # An `end` without `error` that stopped early (shutdown) must not look complete either.
                early = stream_error(event, None)
                return error_event(early) if early is not None else events.finish(event)
            # `retry` is invisible (the engine never retries after content here); `tool_call` and
            # `tool_result` stay inside the proxy, which runs the agent's tools itself. Calls of the
            # client's tools come with `end`, as its `tool_calls`.
            return b""

        ctx = stream_context(request, stream.id, stream.runtime.name, "anthropic")
        return await stream_sse(request, stream, ctx, self._observer, self._heartbeat, encode)

    async def _complete(
        self, request: web.Request, parsed: MessagesRequest, stream: Stream
    ) -> web.StreamResponse:
        ctx = stream_context(request, stream.id, stream.runtime.name, "anthropic")
        end, error = await collect(stream, ctx, self._observer)
        if error is not None:
            return failure_response(error)
        answer = message(f"msg_{stream.id}", parsed.model, end)
        return web.Response(body=encode_json(answer), content_type="application/json")
