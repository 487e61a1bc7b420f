"""The `/v1/responses` handlers: parse, open the engine's stream (continuing a stored response when
asked), write it as semantic events (`stream: true`) or collect it into one `response` object; and
read or delete a stored response."""

from __future__ import annotations

import time
import uuid

from aiohttp import web

from proxy.engine import Engine, Stream
from proxy.engine.refusals import InvalidMessages, PromptTooLong, Refused, UnknownConversation
from proxy.errors import RequestError
from proxy.observability.observer import Observer
from proxy.transports.collect import Collector, error_status, stream_error
from proxy.transports.http import ARRIVED_AT, CALLER, read_json_object, stream_context
from proxy.transports.openai.chunks import content_text
from proxy.transports.openai.errors import openai_error, request_error_response
from proxy.transports.pump import pump
from proxy.transports.refusals import http_status
from proxy.transports.responses.events import (
    STORED_ECHO,
    ResponseEvents,
    ResponseObject,
    output_items,
)
from proxy.transports.responses.request import parse_responses_request
from proxy.transports.sse import stream_sse
from proxy.transports.wire import encode_json

RESPONSE_ID = "resp_"


def _json(body: object) -> web.Response:
    return web.Response(body=encode_json(body), content_type="application/json")


def _not_found(response_id: str) -> web.Response:
    return openai_error(404, "response_not_found", f"no response {response_id!r}")


def _refused(exc: RequestError | Refused) -> web.Response:
    if isinstance(exc, UnknownConversation):
        message = "no stored response of that id (unknown, expired, or another key's)"
        return openai_error(404, "previous_response_not_found", message, param="previous_response_id")
    if isinstance(exc, (InvalidMessages, PromptTooLong)):
        return openai_error(http_status(exc), exc.code, exc.message, param="input")
    return request_error_response(exc)


class ResponsesTransport:
    def __init__(self, engine: Engine, observer: Observer, heartbeat_interval: float) -> None:
        self._engine = engine
        self._observer = observer
        self._heartbeat = heartbeat_interval

    async def create(self, request: web.Request) -> web.StreamResponse:
        response_id = f"{RESPONSE_ID}{uuid.uuid4().hex}"
        try:
            parsed = parse_responses_request(await read_json_object(request))
            stream = await self._engine.open_chat(
                parsed.model,
                parsed.messages,
                parsed.options,
                tools=parsed.tools,
                response_format=parsed.response_format,
                arrived_at=request.get(ARRIVED_AT),
                caller=request.get(CALLER),
                previous=parsed.previous_response_id,
                store_as=response_id if parsed.store else None,
                client_system=True,
            )
        except (RequestError, Refused) as exc:
            return _refused(exc)
        response = ResponseObject(response_id, int(time.time()), parsed.model, parsed.echo)
        if parsed.stream:
            return await self._stream(request, stream, ResponseEvents(response))
        return await self._complete(request, stream, response)

    async def _stream(
        self, request: web.Request, stream: Stream, events: ResponseEvents
    ) -> web.StreamResponse:
        ctx = stream_context(request, stream.id, stream.runtime.name, "responses")
        return await stream_sse(request, stream, ctx, self._observer, self._heartbeat, events.encode)

    async def _complete(
        self, request: web.Request, stream: Stream, response: ResponseObject
    ) -> web.StreamResponse:
        collected = Collector()
        ctx = stream_context(request, stream.id, stream.runtime.name, "responses")
        end = await pump(stream, collected, ctx, self._observer, heartbeat_interval=None)
        if end is None:  # pragma: no cover - a collecting send never loses its client
            return openai_error(503, "client_gone", "the request was abandoned")
        error = stream_error(end, collected.error)
        if error is not None:
            status = error_status(error.code)
            return openai_error(status, error.code, error.message, retry_after=1 if status == 503 else None)
        output = output_items(response.id, content_text(end), end.tool_calls or [])
        return _json(
            response.at("incomplete" if end.finish_reason == "length" else "completed", output, end.usage)
        )

    async def get(self, request: web.Request) -> web.Response:
        response_id = request.match_info["response_id"]
        if not response_id.startswith(RESPONSE_ID):
            return _not_found(response_id)
        try:
            answer = await self._engine.stored_answer(response_id, request.get(CALLER))
        except UnknownConversation:
            return _not_found(response_id)
        except Refused as exc:
            return request_error_response(exc)
        response = ResponseObject(response_id, int(answer.created_at), answer.model or "", STORED_ECHO)
        return _json(
            response.at("completed", output_items(response_id, answer.text, answer.tool_calls), answer.usage)
        )

    async def delete(self, request: web.Request) -> web.Response:
        response_id = request.match_info["response_id"]
        if not response_id.startswith(RESPONSE_ID):
            return _not_found(response_id)
        try:
            await self._engine.forget(response_id, request.get(CALLER))
        except UnknownConversation:
            return _not_found(response_id)
        except Refused as exc:
            return request_error_response(exc)
        return _json({"id": response_id, "object": "response", "deleted": True})
