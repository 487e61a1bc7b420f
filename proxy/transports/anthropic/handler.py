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
from proxy.transports.body import BodyWriter
from proxy.transports.collect import Collector, stream_error
from proxy.transports.http import ARRIVED_AT, CALLER, read_json_object, stream_context
from proxy.transports.pump import pump
from proxy.transports.refusal_lines import REQUESTED_AGENT
from proxy.transports.sse import SSE_HEADERS
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
        response = web.StreamResponse(headers=SSE_HEADERS)
        try:
            await response.prepare(request)
        except BaseException:
            await stream.aclose()
            raise
        events = MessageEvents(f"msg_{stream.id}", parsed.model)
        failed = False
        body = BodyWriter(request, response)

        async def send(event: Event) -> None:
            nonlocal failed
            if isinstance(event, Delta):
                await body.write(events.text(event.text))
            elif isinstance(event, Heartbeat):
                await body.write(PING)
            elif isinstance(event, Start):
                await body.write(events.start())
            elif isinstance(event, Output):
                if not event.partial:
                    await body.write(events.text(encode_json(event.data).decode()))
            elif isinstance(event, Error):
                failed = True
                await body.write(error_event(event))
            elif isinstance(event, End) and not failed:
                # An `end` without `error` that stopped early (shutdown) must not look complete either.
                early = stream_error(event, None)
                await body.write(error_event(early) if early is not None else events.finish(event))
            # `retry` is invisible (the engine never retries after content here); `tool_call` and
            # `tool_result` stay inside the proxy, which runs the agent's tools itself. Calls of the
            # client's tools come with `end`, as its `tool_calls`.

        ctx = stream_context(request, stream.id, stream.runtime.name, "anthropic")
        end = await pump(stream, send, ctx, self._observer, heartbeat_interval=self._heartbeat)
        if end is not None:
            await body.end()
        return response

    async def _complete(
        self, request: web.Request, parsed: MessagesRequest, stream: Stream
    ) -> web.StreamResponse:
        collected = Collector()
        ctx = stream_context(request, stream.id, stream.runtime.name, "anthropic")
        end = await pump(stream, collected, ctx, self._observer, heartbeat_interval=None)
        if end is None:  # pragma: no cover - a collecting send never loses its client
            return failure_response(
                Error(stream_id=stream.id, code="cancelled", message="abandoned", retryable=True)
            )
        error = stream_error(end, collected.error)
        if error is not None:
            return failure_response(error)
        answer = message(f"msg_{stream.id}", parsed.model, end)
        return web.Response(body=encode_json(answer), content_type="application/json")
