"""OpenAI Responses (`POST /v1/responses`): its semantic SSE events with `sequence_number`, `response`
bodies, and OpenAI's error shape; a failure mid-stream is `response.failed`."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web

from proxy.mock_upstream.wires.base import Call, WireError, chat_tool, json_response, schema_format, sse
from proxy.mock_upstream.wires.openai_chat import SSE_HEADERS, ChatWire

_INCOMPLETE: Final[dict[str, str]] = {"length": "max_output_tokens", "content_filter": "content_filter"}
_MALFORMED: Final[bytes] = b'event: response.output_text.delta\ndata: {"type": "response.output_text.de\n\n'


def _usage(call: Call) -> dict[str, Any] | None:
    behaviour, answer = call.behaviour, call.answer
    if not behaviour.usage:
        return None
    prompt = answer.input_tokens + behaviour.cache_read + behaviour.cache_write
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": behaviour.cache_read},
        "output_tokens": answer.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + answer.output_tokens,
    }


def _item(call: Call, done: bool) -> dict[str, Any]:
    """The one output item: a `message` with one `output_text`, or a `function_call`."""
    answer, status = call.answer, "completed" if done else "in_progress"
    tool = answer.tool_call
    if tool is not None:
        arguments = answer.text if done else ""
        return {
            "id": f"fc_mock{call.number}",
            "type": "function_call",
            "status": status,
            "call_id": tool.id,
            "name": tool.name,
            "arguments": arguments,
        }
    content = [_part(answer.text)] if done else []
    item_id = f"msg_mock{call.number}"
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def _part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _response(call: Call, status: str, output: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": f"resp_mock{call.number}",
        "object": "response",
        "created_at": call.created,
        "status": status,
        "model": call.model,
        "output": output,
        "usage": None,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "metadata": {},
        "parallel_tool_calls": True,
        "temperature": None,
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
        **extra,
    }


def _final(call: Call, finish: str | None) -> dict[str, Any]:
    """The finished `response`: completed, or incomplete with its reason; in progress without `finish`."""
    output = [_item(call, done=True)]
    if finish is None:
        return _response(call, "in_progress", output, usage=_usage(call))
    reason = _INCOMPLETE.get(finish)
    status = "incomplete" if reason else "completed"
    details = {"reason": reason} if reason else None
    return _response(call, status, output, usage=_usage(call), incomplete_details=details)


class ResponsesStream:
    """`response.created`, `response.in_progress`, the item's added/delta/done events, then
    `response.completed` (or `response.incomplete`) with usage."""

    headers = SSE_HEADERS

    def __init__(self, call: Call) -> None:
        self._call = call
        self._numbers = itertools.count()
        self._ids = {"item_id": _item(call, done=False)["id"], "output_index": 0}
        self._text_ids = {**self._ids, "content_index": 0}

    def _event(self, event: str, **data: Any) -> bytes:
        return sse(event, {"type": event, "sequence_number": next(self._numbers), **data})

    def start(self) -> bytes:
        response = _response(self._call, "in_progress", [])
        return self._event("response.created", response=response) + self._event(
            "response.in_progress", response=response
        )

    def _opened(self) -> bytes:
        out = self._event("response.output_item.added", output_index=0, item=_item(self._call, done=False))
        if self._call.answer.tool_call is None:
            out += self._event("response.content_part.added", **self._text_ids, part=_part(""))
        return out

    def _delta(self, piece: str) -> bytes:
        if self._call.answer.tool_call is not None:
            return self._event("response.function_call_arguments.delta", **self._ids, delta=piece)
        return self._event("response.output_text.delta", **self._text_ids, delta=piece, logprobs=[])

    def pieces(self) -> list[bytes]:
        out = [self._delta(p) for p in self._call.answer.pieces]
        if out:
            out[0] = self._opened() + out[0]
        return out

    def finish(self) -> bytes:
        call = self._call
        answer, text = call.answer, call.answer.text
        out = b"" if answer.pieces else self._opened()
        if answer.tool_call is not None:
            done = {"name": answer.tool_call.name, "arguments": text}
            out += self._event("response.function_call_arguments.done", **self._ids, **done)
        else:
            out += self._event("response.output_text.done", **self._text_ids, text=text, logprobs=[])
            out += self._event("response.content_part.done", **self._text_ids, part=_part(text))
        out += self._event("response.output_item.done", output_index=0, item=_item(call, done=True))
        final = _final(call, answer.finish_reason)
        kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        return out + self._event(kind, response=final)

    def error(self) -> bytes:
        error = {"code": "server_error", "message": "mock: injected in-stream error"}
        return self._event("response.failed", response=_response(self._call, "failed", [], error=error))

    def malformed(self) -> bytes:
        return _MALFORMED

    def unfinished(self) -> bytes:
        return b""


def _input(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The `input` items as chat messages: `function_call_output` becomes a `tool` message."""
    out: list[dict[str, Any]] = []
    if body.get("instructions"):
        out.append({"role": "system", "content": body["instructions"]})
    items = body["input"]
    if isinstance(items, str):
        return [*out, {"role": "user", "content": items}]
    for item in items:
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        if kind == "function_call_output":
            out.append({"role": "tool", "content": item.get("output")})
        elif kind == "function_call":
            out.append({"role": "assistant", "content": None})
        elif "role" in item:
            out.append({"role": item["role"], "content": item.get("content")})
    return out


class ResponsesWire(ChatWire):
    """`POST /v1/responses`, the model in the body; OpenAI's errors, as chat-completions."""

    paths = ("/v1/responses", "/responses")
    malformed_body = b'{"id": "resp_malformed", "output": [{"type": "message", "content": "'

    def prompt(self, body: Any) -> Mapping[str, Any]:
        if not isinstance(body.get("input"), str | list):
            raise WireError("mock: 'input' must be a string or a list", "input")
        tools = [t for t in body.get("tools") or [] if isinstance(t, Mapping) and t.get("type") == "function"]
        prompt: dict[str, Any] = {
            "messages": _input(body),
            "tools": [chat_tool(t.get("name"), t.get("parameters")) for t in tools],
        }
        text = body.get("text")
        fmt = text.get("format") if isinstance(text, Mapping) else None
        if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
            prompt["response_format"] = schema_format(fmt.get("schema"))
        elif isinstance(fmt, Mapping) and fmt.get("type") == "json_object":
            prompt["response_format"] = {"type": "json_object"}
        return prompt

    def stream(self, call: Call) -> ResponsesStream:
        return ResponsesStream(call)

    def complete(self, call: Call, finished: bool) -> web.Response:
        return json_response(_final(call, call.answer.finish_reason if finished else None))
