"""The `POST /v1/chat/completions` handler: parse, open the engine's stream, and write it as
chunks (`stream: true`) or collect it into one answer."""

from __future__ import annotations

import time

from aiohttp import web

from proxy.engine import Engine, Stream
from proxy.engine.refusals import Refused
from proxy.errors import RequestError
from proxy.events import Delta, End, Error, Event, Heartbeat, Output, Start
from proxy.observability.observer import Observer
from proxy.transports.body import BodyWriter
from proxy.transports.collect import collect, error_status, stream_error
from proxy.transports.http import ARRIVED_AT, CALLER, read_json_object, stream_context
from proxy.transports.openai.chunks import DONE, KEEPALIVE, Chunks, completion
from proxy.transports.openai.errors import error_chunk, openai_error, request_error_response
from proxy.transports.openai.request import ChatRequest, parse_chat_request
from proxy.transports.pump import pump
from proxy.transports.refusal_lines import REQUESTED_AGENT
from proxy.transports.sse import SSE_HEADERS
from proxy.transports.wire import encode_json


class OpenAITransport:
    def __init__(self, engine: Engine, observer: Observer, heartbeat_interval: float) -> None:
        self._engine = engine
        self._observer = observer
        self._heartbeat = heartbeat_interval

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        try:
            chat = parse_chat_request(await read_json_object(request))
            request[REQUESTED_AGENT] = chat.model
            stream = await self._engine.open_chat(
                chat.model,
                chat.messages,
                chat.options,
                tools=chat.tools,
                response_format=chat.response_format,
                arrived_at=request.get(ARRIVED_AT),
                caller=request.get(CALLER),
            )
        except (RequestError, Refused) as exc:
            return request_error_response(exc)
        created = int(time.time())
        if chat.stream:
            return await self._stream(request, chat, stream, created)
        return await self._complete(request, stream, created)

    async def _stream(
        self, request: web.Request, chat: ChatRequest, stream: Stream, created: int
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers=SSE_HEADERS)
        try:
            await response.prepare(request)
        except BaseException:
            await stream.aclose()
            raise
        chunks = Chunks(f"chatcmpl-{stream.id}", created, chat.model)
        failed = False
        body = BodyWriter(request, response)

        async def send(event: Event) -> None:
            nonlocal failed
            if isinstance(event, Delta):
                await body.write(chunks.content(event.text))
            elif isinstance(event, Heartbeat):
                await body.write(KEEPALIVE)
            elif isinstance(event, Start):
                await body.write(chunks.choice({"role": "assistant", "content": ""}))
            elif isinstance(event, Output):
                if not event.partial:
                    await body.write(chunks.content(encode_json(event.data).decode()))
            elif isinstance(event, Error):
                failed = True
                await body.write(error_chunk(event))
            elif isinstance(event, End) and not failed:
                # An `end` without `error` that stopped early (shutdown) must not look complete either.
                early = stream_error(event, None)
                if early is not None:
                    await body.write(error_chunk(early))
                    return
                last = chunks.answered_by(event.model)
                tail = last.tool_calls(event.tool_calls) if event.tool_calls else b""
                tail += last.choice({}, event.finish_reason)
                if chat.include_usage:
                    tail += last.usage(event)
                await body.write(tail + DONE)
            # `retry` is invisible (the engine never retries after content here); `tool_call` and
            # `tool_result` stay inside the proxy, which runs the agent's tools itself. Calls of the
            # client's tools come with `end`, as its `tool_calls`.

        ctx = stream_context(request, stream.id, stream.runtime.name, "openai")
        end = await pump(stream, send, ctx, self._observer, heartbeat_interval=self._heartbeat)
        if end is not None:
            await body.end()
        return response

    async def _complete(self, request: web.Request, stream: Stream, created: int) -> web.StreamResponse:
        ctx = stream_context(request, stream.id, stream.runtime.name, "openai")
        end, error = await collect(stream, ctx, self._observer)
        if error is not None:
            status = error_status(error.code)
            return openai_error(status, error.code, error.message, retry_after=1 if status == 503 else None)
        answer = completion(f"chatcmpl-{stream.id}", created, end)
        return web.Response(body=encode_json(answer), content_type="application/json")
