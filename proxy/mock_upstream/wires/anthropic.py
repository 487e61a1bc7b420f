"""Anthropic Messages (`POST /v1/messages`): its SSE events (with a `ping`), `message` bodies and
`{"type": "error", "error": {"type", "message"}}` errors; overloaded is HTTP 529."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web

from proxy.mock_upstream.wires.base import (
    Call,
    TableErrors,
    WireError,
    body_model,
    chat_tool,
    json_response,
    json_value,
    schema_format,
    sse,
)
from proxy.mock_upstream.wires.openai_chat import SSE_HEADERS

_STOP_REASONS: Final[dict[str, str]] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
_CONTEXT_LENGTH = (400, "invalid_request_error", "mock: prompt is too long: 250000 tokens > 200000 maximum")
_HTTP_FAULTS: Final[dict[str, tuple[int, str, str]]] = {
    "http400": (400, "invalid_request_error", "mock: invalid request"),
    "http401": (401, "authentication_error", "mock: invalid x-api-key"),
    "http403": (403, "permission_error", "mock: permission denied"),
    "http404": (404, "not_found_error", "mock: model not found"),
    "http408": (408, "timeout_error", "mock: request timed out"),
    "http409": (409, "invalid_request_error", "mock: conflict"),
    "http413": (413, "request_too_large", "mock: request exceeds the maximum allowed size"),
    "context_length": _CONTEXT_LENGTH,
    "http429": (429, "rate_limit_error", "mock: rate limit reached"),
    "http500": (500, "api_error", "mock: internal server error"),
    "http502": (502, "api_error", "mock: bad gateway"),
    "http503": (503, "api_error", "mock: service unavailable"),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "http504": (504, "timeout_error", "mock: gateway timeout"),
}
_PING: Final[bytes] = sse("ping", {"type": "ping"})
_MALFORMED: Final[bytes] = b'event: content_block_delta\ndata: {"type": "content_block_delta", "de\n\n'


def error_response(status: int, error_type: str, message: str) -> web.Response:
    return json_response({"type": "error", "error": {"type": error_type, "message": message}}, status)


def _usage(call: Call) -> dict[str, int]:
    behaviour, answer = call.behaviour, call.answer
    if not behaviour.usage:
        return {"input_tokens": 0, "output_tokens": 0}
    usage = {"input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens}
    if behaviour.cache_read or behaviour.cache_write:
        usage["cache_creation_input_tokens"] = behaviour.cache_write
        usage["cache_read_input_tokens"] = behaviour.cache_read
    return usage


def _message(call: Call, content: list[dict[str, Any]], stop_reason: str | None) -> dict[str, Any]:
    return {
        "id": f"msg_mock{call.number}",
        "type": "message",
        "role": "assistant",
        "model": call.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": _usage(call),
    }


class AnthropicStream:
    """`message_start`, `ping`, one content block of deltas, `message_delta` (usage), `message_stop`."""

    headers = SSE_HEADERS

    def __init__(self, call: Call) -> None:
        self._call = call
        tool = call.answer.tool_call
        block = (
            {"type": "tool_use", "id": tool.id, "name": tool.name, "input": {}}
            if tool
            else {"type": "text", "text": ""}
        )
        self._block_start = sse(
            "content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}
        )
        self._delta_key = ("input_json_delta", "partial_json") if tool else ("text_delta", "text")

    def start(self) -> bytes:
        start = dict(_message(self._call, [], None))
        start["usage"] = {**start["usage"], "output_tokens": 0}
        return sse("message_start", {"type": "message_start", "message": start}) + _PING

    def pieces(self) -> list[bytes]:
        kind, key = self._delta_key
        head = {"type": "content_block_delta", "index": 0}
        pieces = self._call.answer.pieces
        out = [sse("content_block_delta", {**head, "delta": {"type": kind, key: p}}) for p in pieces]
        if out:
            out[0] = self._block_start + out[0]
        return out

    def finish(self) -> bytes:
        call = self._call
        delta = {"stop_reason": _STOP_REASONS[call.answer.finish_reason], "stop_sequence": None}
        return (
            (b"" if call.answer.pieces else self._block_start)
            + sse("content_block_stop", {"type": "content_block_stop", "index": 0})
            + sse("message_delta", {"type": "message_delta", "delta": delta, "usage": _usage(call)})
            + sse("message_stop", {"type": "message_stop"})
        )

    def error(self) -> bytes:
        return sse("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})

    def malformed(self) -> bytes:
        return _MALFORMED

    def unfinished(self) -> bytes:
        return b""


def _messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Anthropic's messages as chat messages: a user turn's `tool_result` blocks become `tool` messages."""
    out: list[dict[str, Any]] = []
    if body.get("system"):
        out.append({"role": "system", "content": body["system"]})
    for message in body["messages"]:
        if not isinstance(message, Mapping):
            continue
        content = message.get("content")
        if message.get("role") != "user" or not isinstance(content, list):
            out.append({"role": message.get("role"), "content": content})
            continue
        blocks = [b for b in content if isinstance(b, Mapping)]
        results = [b for b in blocks if b.get("type") == "tool_result"]
        out += [{"role": "tool", "content": b.get("content")} for b in results]
        texts = [b for b in blocks if b.get("type") == "text"]
        if texts or not results:
            out.append({"role": "user", "content": texts})
    return out


class AnthropicWire(TableErrors):
    """`POST /v1/messages`, the model in the body."""

    paths = ("/v1/messages",)
    faults, invalid, internal = _HTTP_FAULTS, "invalid_request_error", "api_error"
    malformed_body = b'{"id": "msg_malformed", "content": [{"type": "text", "text": "'

    def model(self, request: web.Request, body: Any) -> object:
        return body_model(body)

    def error_response(self, status: int, error_type: str, message: str) -> web.Response:
        return error_response(status, error_type, message)

    def prompt(self, body: Any) -> Mapping[str, Any]:
        if not isinstance(body.get("messages"), list):
            raise WireError("mock: 'messages' must be a list", "messages")
        tools = [t for t in body.get("tools") or [] if isinstance(t, Mapping)]
        prompt: dict[str, Any] = {
            "messages": _messages(body),
            "tools": [chat_tool(t.get("name"), t.get("input_schema")) for t in tools],
        }
        config = body.get("output_config")
        fmt = config.get("format") if isinstance(config, Mapping) else body.get("output_format")
        if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
            prompt["response_format"] = schema_format(fmt.get("schema"))
        return prompt

    def streaming(self, request: web.Request, body: Mapping[str, Any]) -> bool:
        return body.get("stream") is True

    def stream(self, call: Call) -> AnthropicStream:
        return AnthropicStream(call)

    def complete(self, call: Call, finished: bool) -> web.Response:
        answer = call.answer
        tool = answer.tool_call
        block = (
            {"type": "tool_use", "id": tool.id, "name": tool.name, "input": json_value(answer.text)}
            if tool
            else {"type": "text", "text": answer.text}
        )
        stop = _STOP_REASONS[answer.finish_reason] if finished else None
        return json_response(_message(call, [block], stop))
