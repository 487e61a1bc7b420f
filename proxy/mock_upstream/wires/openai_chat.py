"""OpenAI Chat Completions (`/v1/chat/completions`, and Azure's deployment paths): pre-encoded
`chat.completion.chunk` SSE bytes, `chat.completion` bodies and OpenAI's error shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NamedTuple

import orjson
from aiohttp import web

from proxy.mock_upstream.answer import Answer
from proxy.mock_upstream.behaviour import MockBehaviour
from proxy.mock_upstream.faults import add_retry_after
from proxy.mock_upstream.wires.base import Call, StreamEncoder, WireError, body_model, json_response

DONE: Final[bytes] = b"data: [DONE]\n\n"
MALFORMED: Final[bytes] = b'data: {"id": "chatcmpl-malformed", "choices": [{"delta": {"content": "\n\n'
SSE_HEADERS: Final[dict[str, str]] = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


class HttpFault(NamedTuple):
    status: int
    type: str
    code: str | None
    message: str


_CONTEXT_LENGTH = HttpFault(
    400, "invalid_request_error", "context_length_exceeded", "mock: maximum context length exceeded"
)
HTTP_FAULT_SPECS: Final[dict[str, HttpFault]] = {
    "http400": HttpFault(400, "invalid_request_error", None, "mock: invalid request"),
    "http401": HttpFault(401, "authentication_error", "invalid_api_key", "mock: incorrect API key provided"),
    "http403": HttpFault(403, "permission_error", None, "mock: permission denied"),
    "http404": HttpFault(404, "invalid_request_error", "model_not_found", "mock: the model does not exist"),
    "http408": HttpFault(408, "timeout", None, "mock: request timed out"),
    "http409": HttpFault(409, "conflict", None, "mock: conflict"),
    "http413": _CONTEXT_LENGTH,
    "context_length": _CONTEXT_LENGTH,
    "http429": HttpFault(429, "requests", "rate_limit_exceeded", "mock: rate limit reached"),
    "http500": HttpFault(500, "server_error", None, "mock: the server had an error"),
    "http502": HttpFault(502, "server_error", None, "mock: bad gateway"),
    "http503": HttpFault(503, "server_error", None, "mock: the engine is currently overloaded"),
    "overloaded": HttpFault(503, "server_error", None, "mock: the engine is currently overloaded"),
    "http504": HttpFault(504, "server_error", None, "mock: gateway timeout"),
}


def error_response(
    status: int, message: str, error_type: str, code: str | None = None, param: str | None = None
) -> web.Response:
    """An OpenAI-style JSON error."""
    error = {"message": message, "type": error_type, "param": param, "code": code}
    return web.json_response({"error": error}, status=status)


def http_fault_response(fault: str, behaviour: MockBehaviour) -> web.Response:
    """The OpenAI answer of an HTTP fault, with `Retry-After` (and `retry-after-ms`) if asked."""
    spec = HTTP_FAULT_SPECS[fault]
    return add_retry_after(error_response(spec.status, spec.message, spec.type, spec.code), behaviour)


def usage_dict(answer: Answer, behaviour: MockBehaviour) -> dict[str, Any]:
    cached = behaviour.cache_read + behaviour.cache_write
    prompt = answer.input_tokens + cached
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": answer.output_tokens,
        "total_tokens": prompt + answer.output_tokens,
    }
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": behaviour.cache_read}
    return usage


class ChunkEncoder:
    """Encodes the chunks of one stream; every chunk shares a pre-encoded prefix."""

    __slots__ = ("_head", "_prefix", "_suffix")

    def __init__(self, completion_id: str, created: int, model: str) -> None:
        self._head = (
            b'data: {"id":'
            + orjson.dumps(completion_id)
            + b',"object":"chat.completion.chunk","created":'
            + str(created).encode()
            + b',"model":'
            + orjson.dumps(model)
        )
        self._prefix = self._head + b',"choices":[{"index":0,"delta":'
        self._suffix = b',"finish_reason":null}]}\n\n'

    def delta(self, delta: dict[str, Any]) -> bytes:
        return self._prefix + orjson.dumps(delta) + self._suffix

    def finish(self, reason: str) -> bytes:
        return self._prefix + b'{},"finish_reason":' + orjson.dumps(reason) + b"}]}\n\n"

    def usage(self, usage: dict[str, Any]) -> bytes:
        return self._head + b',"choices":[],"usage":' + orjson.dumps(usage) + b"}\n\n"

    def pieces(self, answer: Answer) -> list[bytes]:
        """One chunk per piece; the first also carries `role` (and the tool call's id and name)."""
        call = answer.tool_call
        if call is None:
            out = [self.delta({"content": p}) for p in answer.pieces]
            if out:
                out[0] = self.delta({"role": "assistant", "content": answer.pieces[0]})
            return out
        out = []
        for i, piece in enumerate(answer.pieces):
            if i == 0:
                tool: dict[str, Any] = {
                    "index": 0,
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": piece},
                }
                out.append(self.delta({"role": "assistant", "content": None, "tool_calls": [tool]}))
            else:
                out.append(self.delta({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
        return out


def error_chunk(message: str, code: str, error_type: str = "server_error") -> bytes:
    """An in-stream error event as OpenAI sends it (clients raise on it)."""
    return (
        b"data: " + orjson.dumps({"error": {"message": message, "type": error_type, "code": code}}) + b"\n\n"
    )


def completion_body(call: Call, completion_id: str, finish_reason: str | None, usage: bool) -> dict[str, Any]:
    """A non-streaming `chat.completion`."""
    answer = call.answer
    message: dict[str, Any] = {"role": "assistant", "content": None}
    tool = answer.tool_call
    if tool is None:
        message["content"] = answer.text
    else:
        message["tool_calls"] = [
            {"id": tool.id, "type": "function", "function": {"name": tool.name, "arguments": answer.text}}
        ]
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": call.created,
        "model": call.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
    }
    if usage:
        body["usage"] = usage_dict(answer, call.behaviour)
    return body


class ChatStream:
    """The chunks of one streamed `chat.completion`, ending in `data: [DONE]`."""

    __slots__ = ("_call", "_encoder", "_include_usage")
    headers = SSE_HEADERS

    def __init__(self, call: Call) -> None:
        self._call = call
        self._encoder = ChunkEncoder(f"chatcmpl-mock{call.number}", call.created, call.model)
        options = call.body.get("stream_options")
        self._include_usage = isinstance(options, dict) and options.get("include_usage") is True

    def start(self) -> bytes:
        return b""

    def pieces(self) -> list[bytes]:
        return self._encoder.pieces(self._call.answer)

    def finish(self) -> bytes:
        call = self._call
        tail = self._encoder.finish(call.answer.finish_reason)
        if self._include_usage and call.behaviour.usage:
            tail += self._encoder.usage(usage_dict(call.answer, call.behaviour))
        return tail + DONE

    def error(self) -> bytes:
        return error_chunk("mock: injected in-stream error", "server_error")

    def malformed(self) -> bytes:
        return MALFORMED

    def unfinished(self) -> bytes:
        return DONE


class ChatWire:
    """`POST /v1/chat/completions` (and `/chat/completions`), the model in the body."""

    paths: tuple[str, ...] = ("/v1/chat/completions", "/chat/completions")
    malformed_body = MALFORMED[6:]

    def model(self, request: web.Request, body: Any) -> object:
        return body_model(body)

    def prompt(self, body: Any) -> Mapping[str, Any]:
        if not isinstance(body.get("messages"), list):
            raise WireError("mock: 'messages' must be a list", "messages")
        return body  # type: ignore[no-any-return]

    def streaming(self, request: web.Request, body: Mapping[str, Any]) -> bool:
        return body.get("stream") is True

    def bad_request(self, message: str, param: str | None, code: str | None = None) -> web.Response:
        return error_response(400, message, "invalid_request_error", code, param)

    def http_fault(self, fault: str, behaviour: MockBehaviour) -> web.Response:
        return http_fault_response(fault, behaviour)

    def failure(self) -> web.Response:
        return error_response(500, "mock: injected error", "server_error", "server_error")

    def stream(self, call: Call) -> StreamEncoder:
        return ChatStream(call)

    def complete(self, call: Call, finished: bool) -> web.Response:
        finish = call.answer.finish_reason if finished else None
        body = completion_body(call, f"chatcmpl-mock{call.number}", finish, call.behaviour.usage)
        return json_response(body)


class AzureWire(ChatWire):
    """Azure OpenAI's chat completions: `/openai/deployments/{deployment}/chat/completions?api-version=…`;
    the model is the body's, else the deployment's name."""

    paths = ("/openai/deployments/{deployment}/chat/completions",)

    def model(self, request: web.Request, body: Any) -> object:
        return super().model(request, body) or request.match_info["deployment"]
