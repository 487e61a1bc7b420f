"""Amazon Bedrock Converse (`POST /model/{modelId}/converse`) and ConverseStream
(`/model/{modelId}/converse-stream`, binary eventstream); errors are named by `x-amzn-ErrorType`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson
from aiohttp import web

from proxy.mock_upstream.wires import eventstream
from proxy.mock_upstream.wires.base import Call, TableErrors, WireError, chat_tool, json_response, json_value

_STOP_REASONS: Final[dict[str, str]] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "content_filtered",
}
_CONTEXT_LENGTH = (400, "ValidationException", "mock: Input is too long for requested model.")
_HTTP_FAULTS: Final[dict[str, tuple[int, str, str]]] = {
    "http400": (400, "ValidationException", "mock: invalid request"),
    "http401": (
        401,
        "UnrecognizedClientException",
        "mock: the security token is invalid",
    ),
    "http403": (403, "AccessDeniedException", "mock: access denied"),
    "http404": (404, "ResourceNotFoundException", "mock: model not found"),
    "http408": (408, "ModelTimeoutException", "mock: model timed out"),
    "http409": (409, "ConflictException", "mock: conflict"),
    "http413": _CONTEXT_LENGTH,
    "context_length": _CONTEXT_LENGTH,
    "http429": (429, "ThrottlingException", "mock: Too many requests, please wait before trying again."),
    "http500": (500, "InternalServerException", "mock: internal server error"),
    "http502": (502, "ServiceUnavailableException", "mock: bad gateway"),
    "http503": (503, "ServiceUnavailableException", "mock: service unavailable"),
    "overloaded": (503, "ServiceUnavailableException", "mock: the model is overloaded"),
    "http504": (504, "ModelTimeoutException", "mock: gateway timeout"),
}
_STREAM_HEADERS: Final[dict[str, str]] = {"Content-Type": "application/vnd.amazon.eventstream"}


def error_response(status: int, name: str, message: str) -> web.Response:
    return json_response({"message": message}, status, headers={"x-amzn-ErrorType": name})


def _usage(call: Call) -> dict[str, int]:
    behaviour, answer = call.behaviour, call.answer
    if not behaviour.usage:
        return {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0}
    cached = behaviour.cache_read + behaviour.cache_write
    usage = {
        "inputTokens": answer.input_tokens,
        "outputTokens": answer.output_tokens,
        "totalTokens": answer.input_tokens + cached + answer.output_tokens,
    }
    if cached:
        usage["cacheReadInputTokens"] = behaviour.cache_read
        usage["cacheWriteInputTokens"] = behaviour.cache_write
    return usage


def _event(event_type: str, data: Mapping[str, Any]) -> bytes:
    return eventstream.event(event_type, orjson.dumps(data))


class BedrockStream:
    """`messageStart`, one content block (`contentBlockStart` for a tool use, `contentBlockDelta`s,
    `contentBlockStop`), `messageStop`, then `metadata` with usage."""

    headers = _STREAM_HEADERS

    def __init__(self, call: Call) -> None:
        self._call = call

    def start(self) -> bytes:
        return _event("messageStart", {"role": "assistant"})

    def pieces(self) -> list[bytes]:
        tool = self._call.answer.tool_call
        key = "toolUse" if tool else "text"
        out = [
            _event("contentBlockDelta", {"delta": {key: {"input": p} if tool else p}, "contentBlockIndex": 0})
            for p in self._call.answer.pieces
        ]
        if tool and out:
            block = {"toolUse": {"toolUseId": tool.id, "name": tool.name}}
            out[0] = _event("contentBlockStart", {"start": block, "contentBlockIndex": 0}) + out[0]
        return out

    def finish(self) -> bytes:
        call = self._call
        return (
            _event("contentBlockStop", {"contentBlockIndex": 0})
            + _event("messageStop", {"stopReason": _STOP_REASONS[call.answer.finish_reason]})
            + _event("metadata", {"usage": _usage(call), "metrics": {"latencyMs": 0}})
        )

    def error(self) -> bytes:
        message = "mock: injected in-stream error"
        payload = {"message": message, "originalStatusCode": 500, "originalMessage": message}
        return eventstream.exception("modelStreamErrorException", orjson.dumps(payload))

    def malformed(self) -> bytes:
        return eventstream.event("contentBlockDelta", b'{"delta": {"text": ')

    def unfinished(self) -> bytes:
        return b""


def _text_blocks(blocks: list[Mapping[str, Any]]) -> list[Any]:
    """Text and JSON blocks as text parts."""
    parts: list[Any] = []
    for block in blocks:
        if "text" in block:
            parts.append(block)
        elif "json" in block:
            parts.append({"text": orjson.dumps(block["json"]).decode()})
    return parts


def _messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Converse messages as chat messages: a user turn's `toolResult` blocks become `tool` messages."""
    out: list[dict[str, Any]] = []
    system = body.get("system")
    if isinstance(system, list):
        out.append({"role": "system", "content": _text_blocks([b for b in system if isinstance(b, Mapping)])})
    for message in body["messages"]:
        if not isinstance(message, Mapping):
            continue
        content = message.get("content")
        blocks = [b for b in content if isinstance(b, Mapping)] if isinstance(content, list) else []
        results = [r for b in blocks if isinstance(r := b.get("toolResult"), Mapping)]
        for result in results:
            parts = result.get("content")
            parts = [p for p in parts if isinstance(p, Mapping)] if isinstance(parts, list) else []
            out.append({"role": "tool", "content": _text_blocks(parts)})
        texts = _text_blocks(blocks)
        if texts or not results:
            out.append({"role": message.get("role"), "content": texts})
    return out


def _tools(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    config = body.get("toolConfig")
    tools = config.get("tools") if isinstance(config, Mapping) else None
    specs = [
        t["toolSpec"]
        for t in tools or []
        if isinstance(t, Mapping) and isinstance(t.get("toolSpec"), Mapping)
    ]
    out = []
    for spec in specs:
        schema = spec.get("inputSchema")
        out.append(chat_tool(spec.get("name"), schema.get("json") if isinstance(schema, Mapping) else None))
    return out


class BedrockWire(TableErrors):
    """Converse and ConverseStream, the model id (URL-quoted, as botocore sends it) in the path."""

    faults, invalid, internal = _HTTP_FAULTS, "ValidationException", "InternalServerException"

    paths = ("/model/{model_id:[^/]+}/converse", "/model/{model_id:[^/]+}/converse-stream")
    malformed_body = b'{"output": {"message": {"content": [{"text": "'

    def model(self, request: web.Request, body: Any) -> object:
        return request.match_info["model_id"]

    def error_response(self, status: int, error_type: str, message: str) -> web.Response:
        return error_response(status, error_type, message)

    def prompt(self, body: Any) -> Mapping[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            raise WireError("mock: 'messages' must be a list", "messages")
        return {"messages": _messages(body), "tools": _tools(body)}

    def streaming(self, request: web.Request, body: Mapping[str, Any]) -> bool:
        return request.path.endswith("/converse-stream")

    def stream(self, call: Call) -> BedrockStream:
        return BedrockStream(call)

    def complete(self, call: Call, finished: bool) -> web.Response:
        answer = call.answer
        tool = answer.tool_call
        block = (
            {"toolUse": {"toolUseId": tool.id, "name": tool.name, "input": json_value(answer.text)}}
            if tool
            else {"text": answer.text}
        )
        body: dict[str, Any] = {
            "output": {"message": {"role": "assistant", "content": [block]}},
            "usage": _usage(call),
            "metrics": {"latencyMs": 0},
        }
        if finished:
            body["stopReason"] = _STOP_REASONS[answer.finish_reason]
        return json_response(body)
