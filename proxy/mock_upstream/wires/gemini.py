"""Google Gemini (`POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent?alt=sse`):
`GenerateContentResponse` chunks and Google's `{"error": {"code", "message", "status"}}` errors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import orjson
from aiohttp import web

from proxy.mock_upstream.answer import ToolCall
from proxy.mock_upstream.wires.base import (
    Call,
    TableErrors,
    WireError,
    chat_tool,
    json_response,
    json_value,
    schema_format,
)
from proxy.mock_upstream.wires.openai_chat import SSE_HEADERS

_FINISH: Final[dict[str, str]] = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "content_filter": "SAFETY",
}
_CONTEXT_LENGTH = (
    400,
    "INVALID_ARGUMENT",
    "mock: The input token count exceeds the maximum number of tokens allowed 1048576.",
)
_HTTP_FAULTS: Final[dict[str, tuple[int, str, str]]] = {
    "http400": (400, "INVALID_ARGUMENT", "mock: invalid argument"),
    "http401": (401, "UNAUTHENTICATED", "mock: API key not valid"),
    "http403": (403, "PERMISSION_DENIED", "mock: permission denied"),
    "http404": (404, "NOT_FOUND", "mock: model not found"),
    "http408": (408, "DEADLINE_EXCEEDED", "mock: deadline exceeded"),
    "http409": (409, "ABORTED", "mock: aborted"),
    "http413": _CONTEXT_LENGTH,
    "context_length": _CONTEXT_LENGTH,
    "http429": (429, "RESOURCE_EXHAUSTED", "mock: Resource has been exhausted (e.g. check quota)."),
    "http500": (500, "INTERNAL", "mock: An internal error has occurred."),
    "http502": (502, "UNAVAILABLE", "mock: bad gateway"),
    "http503": (503, "UNAVAILABLE", "mock: The service is currently unavailable."),
    "overloaded": (503, "UNAVAILABLE", "mock: The model is overloaded. Please try again later."),
    "http504": (504, "DEADLINE_EXCEEDED", "mock: deadline exceeded"),
}
_MALFORMED: Final[bytes] = b'data: {"candidates": [{"content": {"parts": [{"text": "\n\n'


def _error(status: int, code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "status": code}}


def error_response(status: int, code: str, message: str) -> web.Response:
    return json_response(_error(status, code, message), status)


def _usage(call: Call) -> dict[str, int]:
    behaviour, answer = call.behaviour, call.answer
    prompt = answer.input_tokens + behaviour.cache_read + behaviour.cache_write
    usage = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": answer.output_tokens,
        "totalTokenCount": prompt + answer.output_tokens,
    }
    if behaviour.cache_read:
        usage["cachedContentTokenCount"] = behaviour.cache_read
    return usage


def _function_call(tool: ToolCall, arguments: str) -> dict[str, Any]:
    return {"functionCall": {"id": tool.id, "name": tool.name, "args": json_value(arguments)}}


def _chunk(call: Call, parts: list[dict[str, Any]], finish: str | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = _FINISH[finish]
    chunk: dict[str, Any] = {
        "candidates": [candidate],
        "modelVersion": call.model,
        "responseId": f"mock{call.number}",
    }
    if finish is not None and call.behaviour.usage:
        chunk["usageMetadata"] = _usage(call)
    return chunk


def _data(chunk: Mapping[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


class GeminiStream:
    """A `data:` chunk per text piece (a function call is one chunk), then one with `finishReason`
    and `usageMetadata`."""

    headers = SSE_HEADERS

    def __init__(self, call: Call) -> None:
        self._call = call

    def start(self) -> bytes:
        return b""

    def pieces(self) -> list[bytes]:
        call = self._call
        tool = call.answer.tool_call
        if tool is not None:
            return [_data(_chunk(call, [_function_call(tool, call.answer.text)]))]
        return [_data(_chunk(call, [{"text": p}])) for p in call.answer.pieces]

    def finish(self) -> bytes:
        return _data(_chunk(self._call, [{"text": ""}], self._call.answer.finish_reason))

    def error(self) -> bytes:
        return _data(_error(500, "INTERNAL", "mock: injected in-stream error"))

    def malformed(self) -> bytes:
        return _MALFORMED

    def unfinished(self) -> bytes:
        return b""


def _field(data: Mapping[str, Any], name: str) -> Any:
    """`data[name]`, else its snake_case spelling, which the API also accepts (and SDKs send)."""
    if name in data:
        return data[name]
    return data.get(re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), name))


def _result_text(response: object) -> object:
    """A `functionResponse.response` as the tool message content: its one string value, else JSON."""
    if isinstance(response, Mapping) and len(response) == 1:
        [value] = response.values()
        if isinstance(value, str):
            return value
    return orjson.dumps(response).decode()


def _parts_text(parts: object) -> list[Any]:
    return [p for p in parts if isinstance(p, Mapping) and "text" in p] if isinstance(parts, list) else []


def _messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Gemini `contents` as chat messages: `functionResponse` parts become `tool` messages."""
    out: list[dict[str, Any]] = []
    system = _field(body, "systemInstruction")
    if isinstance(system, Mapping):
        out.append({"role": "system", "content": _parts_text(system.get("parts"))})
    elif isinstance(system, str):
        out.append({"role": "system", "content": system})
    for content in body["contents"]:
        if not isinstance(content, Mapping):
            continue
        parts = content.get("parts")
        parts = [p for p in parts if isinstance(p, Mapping)] if isinstance(parts, list) else []
        results = [r for p in parts if isinstance(r := _field(p, "functionResponse"), Mapping)]
        out += [{"role": "tool", "content": _result_text(r.get("response"))} for r in results]
        texts = _parts_text(parts)
        if texts or not results:
            role = "assistant" if content.get("role") == "model" else "user"
            out.append({"role": role, "content": texts})
    return out


def _tools(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    declared = [
        f
        for tool in body.get("tools") or []
        if isinstance(tool, Mapping)
        for f in _field(tool, "functionDeclarations") or []
        if isinstance(f, Mapping)
    ]
    return [
        chat_tool(f.get("name"), _field(f, "parametersJsonSchema") or f.get("parameters")) for f in declared
    ]


class GeminiWire(TableErrors):
    """The Gemini API's `generateContent` and `streamGenerateContent`, the model in the path."""

    faults, invalid, internal = _HTTP_FAULTS, "INVALID_ARGUMENT", "INTERNAL"

    paths = ("/v1beta/models/{target:[^/]+}", "/v1/models/{target:[^/]+}")
    malformed_body = b'{"candidates": [{"content": {"parts": [{"text": "'

    def model(self, request: web.Request, body: Any) -> object:
        return request.match_info["target"].rpartition(":")[0]

    def error_response(self, status: int, error_type: str, message: str) -> web.Response:
        return error_response(status, error_type, message)

    def prompt(self, body: Any) -> Mapping[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("contents"), list):
            raise WireError("mock: 'contents' must be a list", "contents")
        prompt: dict[str, Any] = {"messages": _messages(body), "tools": _tools(body)}
        config = _field(body, "generationConfig")
        if isinstance(config, Mapping) and _field(config, "responseMimeType") == "application/json":
            schema = _field(config, "responseJsonSchema") or _field(config, "responseSchema")
            prompt["response_format"] = schema_format(schema) if schema else {"type": "json_object"}
        return prompt

    def streaming(self, request: web.Request, body: Mapping[str, Any]) -> bool:
        return request.match_info["target"].endswith(":streamGenerateContent")

    def stream(self, call: Call) -> GeminiStream:
        return GeminiStream(call)

    def complete(self, call: Call, finished: bool) -> web.Response:
        answer = call.answer
        tool = answer.tool_call
        parts = [_function_call(tool, answer.text)] if tool else [{"text": answer.text}]
        return json_response(_chunk(call, parts, answer.finish_reason if finished else None))
