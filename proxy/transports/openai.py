"""OpenAI-compatible Chat Completions (DESIGN 3.4): `POST /v1/chat/completions`, `model` = agent name.

`stream: true` answers `chat.completion.chunk` SSE ending in `data: [DONE]`, with heartbeats as SSE
comments (`: keepalive`) that OpenAI clients skip. The engine runs these streams with
`mid_stream = "fail"`, so retries are invisible before the first content chunk and a failure after it
ends the stream with one in-stream `{"error": ...}` chunk and no `[DONE]`: clients raise instead of
accepting a truncated answer. `stream: false` drains the same stream and answers one
`chat.completion`. Every error uses OpenAI's shape `{"error": {"message", "type", "param", "code"}}`;
this handler renders them itself, never the app's middleware.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Literal, cast

from aiohttp import web

from proxy.engine import Engine, Stream
from proxy.engine.inputs import ChatMessage, RunOptions
from proxy.engine.refusals import InvalidMessages, PromptTooLong, Refused, UnknownAgent
from proxy.errors import RequestError
from proxy.events import Delta, End, Error, Event, Heartbeat, Output, Start
from proxy.observability.observer import Observer
from proxy.transports.body import BodyWriter
from proxy.transports.collect import Collector, error_status, stream_error
from proxy.transports.http import ARRIVED_AT, CALLER, read_json_object, stream_context
from proxy.transports.pump import pump
from proxy.transports.refusals import http_status
from proxy.transports.sse import SSE_HEADERS
from proxy.transports.wire import encode_json

Role = Literal["system", "developer", "user", "assistant"]
ROLES = frozenset({"system", "developer", "user", "assistant"})
KEEPALIVE = b": keepalive\n\n"
DONE = b"data: [DONE]\n\n"


class InvalidParam(RequestError):
    """A 400 about one request field, named in OpenAI's `param`."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(400, "invalid_request_error", message)
        self.param = param


def _error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def openai_error(
    status: int, code: str, message: str, *, param: str | None = None, retry_after: float | None = None
) -> web.Response:
    body = {"error": {"message": message, "type": _error_type(status), "param": param, "code": code}}
    headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after is not None else None
    return web.Response(
        status=status, body=encode_json(body), content_type="application/json", headers=headers
    )


_REFUSAL_PARAM: dict[type[Refused], str] = {
    UnknownAgent: "model",
    InvalidMessages: "messages",
    PromptTooLong: "messages",
}


def request_error_response(exc: RequestError | Refused) -> web.Response:
    """A request error or refusal in OpenAI's shape; an unknown agent is `model_not_found`."""
    if isinstance(exc, InvalidParam):
        return openai_error(400, "invalid_request_error", exc.message, param=exc.param)
    if isinstance(exc, UnknownAgent):
        return openai_error(404, "model_not_found", exc.message, param="model")
    if isinstance(exc, Refused):
        return openai_error(
            http_status(exc),
            exc.code,
            exc.message,
            param=_REFUSAL_PARAM.get(type(exc)),
            retry_after=exc.retry_after,
        )
    return openai_error(exc.status, exc.code, exc.message, retry_after=exc.retry_after)


# --- the request body -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: list[ChatMessage]
    options: RunOptions
    stream: bool
    include_usage: bool


def _content(value: object, param: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts: list[str] = []
        for i, part in enumerate(value):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise InvalidParam(f"{param}[{i}]", "only content parts of type 'text' are supported")
            text = part.get("text")
            if not isinstance(text, str):
                raise InvalidParam(f"{param}[{i}].text", "a text part needs a string `text`")
            texts.append(text)
        return "".join(texts)
    raise InvalidParam(param, "`content` must be a string or a list of text parts")


def _messages(value: object) -> list[ChatMessage]:
    if not isinstance(value, list) or not value:
        raise InvalidParam("messages", "`messages` must be a non-empty array")
    out: list[ChatMessage] = []
    for i, message in enumerate(value):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidParam(param, "a message must be an object")
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:  # a list or object is unhashable
            raise InvalidParam(
                f"{param}.role", f"role {role!r} is not supported; use system, developer, user or assistant"
            )
        content = _content(message.get("content"), f"{param}.content")
        out.append(ChatMessage(role=cast(Role, role), content=content))
    return out


def _number(body: dict[str, Any], key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InvalidParam(key, f"`{key}` must be a number from {low:g} to {high:g}")
    return float(value)


def _max_tokens(body: dict[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidParam(key, f"`{key}` must be a positive integer")
        return value
    return None


def _stop(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return tuple(value) or None
    raise InvalidParam("stop", "`stop` must be a string or an array of strings")


def _flag(value: object, param: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidParam(param, f"`{param}` must be a boolean")
    return value


def parse_chat_request(body: dict[str, Any]) -> ChatRequest:
    """OpenAI's request body -> what the engine needs; unknown fields are ignored."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidParam("model", "`model` must be the name of an agent (see GET /v1/models)")
    messages = _messages(body.get("messages"))
    n = body.get("n")
    if n is not None and n != 1:
        raise InvalidParam("n", "only `n` = 1 is supported")
    stream_options = body.get("stream_options")
    if stream_options is not None and not isinstance(stream_options, dict):
        raise InvalidParam("stream_options", "`stream_options` must be an object")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise InvalidParam("user", "`user` must be a string")
    options = RunOptions(
        max_tokens=_max_tokens(body),
        temperature=_number(body, "temperature", 0, 2),
        top_p=_number(body, "top_p", 0, 1),
        stop=_stop(body.get("stop")),
        user=user,
    )
    include_usage = _flag((stream_options or {}).get("include_usage"), "stream_options.include_usage")
    return ChatRequest(model, messages, options, _flag(body.get("stream"), "stream"), include_usage)


# --- the answer ---------------------------------------------------------------------------------


def _usage(end: End) -> dict[str, int]:
    prompt, completion = end.usage.input_tokens, end.usage.output_tokens
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _content_text(end: End) -> str:
    if end.output is not None:
        return encode_json(end.output).decode()
    return end.text or ""


class _Chunks:
    """Encodes one stream's `chat.completion.chunk` lines; the per-delta path is one `dumps` of the text."""

    def __init__(self, completion_id: str, created: int, model: str) -> None:
        self._head = b'data: {"id":%s,"object":"chat.completion.chunk","created":%d,"model":%s,' % (
            encode_json(completion_id),
            created,
            encode_json(model),
        )

    def _line(self, rest: dict[str, Any]) -> bytes:
        # `rest` holds the keys after `model`; orjson writes `{...}`, so drop its opening brace.
        return self._head + encode_json(rest)[1:] + b"\n\n"

    def choice(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        return self._line(
            {"choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
        )

    def content(self, text: str) -> bytes:
        return self.choice({"content": text})

    def usage(self, end: End) -> bytes:
        return self._line({"choices": [], "usage": _usage(end)})


def _error_chunk(error: Error) -> bytes:
    status = error_status(error.code)
    body = {
        "error": {"message": error.message, "type": _error_type(status), "param": None, "code": error.code}
    }
    return b"data: %s\n\n" % encode_json(body)


class OpenAITransport:
    def __init__(self, engine: Engine, observer: Observer, heartbeat_interval: float) -> None:
        self._engine = engine
        self._observer = observer
        self._heartbeat = heartbeat_interval

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        try:
            chat = parse_chat_request(await read_json_object(request))
            stream = await self._engine.open_chat(
                chat.model,
                chat.messages,
                chat.options,
                arrived_at=request.get(ARRIVED_AT),
                caller=request.get(CALLER),
            )
        except (RequestError, Refused) as exc:
            return request_error_response(exc)
        created = int(time.time())
        if chat.stream:
            return await self._stream(request, chat, stream, created)
        return await self._complete(request, chat, stream, created)

    async def _stream(
        self, request: web.Request, chat: ChatRequest, stream: Stream, created: int
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers=SSE_HEADERS)
        try:
            await response.prepare(request)
        except BaseException:
            await stream.aclose()
            raise
        chunks = _Chunks(f"chatcmpl-{stream.id}", created, chat.model)
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
                await body.write(_error_chunk(event))
            elif isinstance(event, End) and not failed:
                # An `end` without `error` that stopped early (shutdown) must not look complete either.
                early = stream_error(event, None)
                if early is not None:
                    await body.write(_error_chunk(early))
                    return
                tail = chunks.choice({}, event.finish_reason)
                if chat.include_usage:
                    tail += chunks.usage(event)
                await body.write(tail + DONE)
            # `retry` is invisible (the engine never retries after content here); `tool_call` and
            # `tool_result` stay inside the proxy, which runs the tools itself.

        ctx = stream_context(request, stream.id, chat.model, "openai")
        end = await pump(stream, send, ctx, self._observer, heartbeat_interval=self._heartbeat)
        if end is not None:
            await response.write_eof()
        return response

    async def _complete(
        self, request: web.Request, chat: ChatRequest, stream: Stream, created: int
    ) -> web.StreamResponse:
        collected = Collector()
        ctx = stream_context(request, stream.id, chat.model, "openai")
        end = await pump(stream, collected, ctx, self._observer, heartbeat_interval=None)
        if end is None:  # pragma: no cover - a collecting send never loses its client
            return openai_error(503, "client_gone", "the request was abandoned")
        error = stream_error(end, collected.error)
        if error is not None:
            status = error_status(error.code)
            return openai_error(status, error.code, error.message, retry_after=1 if status == 503 else None)
        answer = {
            "id": f"chatcmpl-{stream.id}",
            "object": "chat.completion",
            "created": created,
            "model": chat.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": _content_text(end), "refusal": None},
                    "logprobs": None,
                    "finish_reason": end.finish_reason,
                }
            ],
            "usage": _usage(end),
        }
        return web.Response(body=encode_json(answer), content_type="application/json")
