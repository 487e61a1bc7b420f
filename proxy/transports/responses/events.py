"""Encoding answers in the Responses API's shapes: the semantic SSE events of one response, each with
its `sequence_number` (the per-delta path is one template and one `dumps` of the text), and the
`response` object they and the non-streaming answer carry."""

from __future__ import annotations

from typing import Any, Literal

from proxy.events import Delta, End, Error, Event, FunctionCall, Heartbeat, Output, Start, Usage
from proxy.transports.collect import error_status, stream_error
from proxy.transports.openai.chunks import content_text
from proxy.transports.sse import KEEPALIVE
from proxy.transports.wire import encode_json

Status = Literal["in_progress", "completed", "incomplete", "failed"]

_FAILED_CODES = {
    "context_too_long": "context_length_exceeded",
    "upstream_rate_limited": "rate_limit_exceeded",
}
"""OpenAI's code for a failed response where it has one; every other failure is a `server_error`,
which clients such as Codex retry (and stop on `context_length_exceeded`)."""


def usage(used: Usage) -> dict[str, Any]:
    return {
        "input_tokens": used.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": used.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": used.input_tokens + used.output_tokens,
    }


def message_item(item_id: str, text: str, status: Status = "completed") -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def call_item(item_id: str, call: FunctionCall, status: Status = "completed") -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments if status == "completed" else "",
        "status": status,
    }


def output_items(
    response_id: str, text: str, calls: list[FunctionCall], with_text: bool = False
) -> list[dict[str, Any]]:
    """A message with the answer's text (unless it is only calls of the client's tools and no text
    was streamed, `with_text`), then the calls."""
    tag = response_id.removeprefix("resp_")
    items = [message_item(f"msg_{tag}", text)] if text or with_text or not calls else []
    return items + [call_item(f"fc_{tag}_{i}", call) for i, call in enumerate(calls)]


def failure(error: Error) -> dict[str, str]:
    """A failed stream's error as `response.error`."""
    code = _FAILED_CODES.get(error.code)
    if code is None:
        code = "server_error" if error_status(error.code) >= 500 else "invalid_prompt"
    return {"code": code, "message": error.message}


class ResponseObject:
    """One response's `response` object; `echo` is what it repeats of the request."""

    def __init__(self, response_id: str, created_at: int, model: str, echo: dict[str, Any]) -> None:
        self.id = response_id
        self._base = {
            "id": response_id,
            "object": "response",
            "created_at": created_at,
            "model": model,
            "error": None,
            "incomplete_details": None,
            **echo,
        }

    def at(
        self,
        status: Status,
        output: list[dict[str, Any]] | None = None,
        used: Usage | None = None,
        error: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        out = {**self._base, "status": status, "output": output or [], "usage": usage(used) if used else None}
        if status == "incomplete":
            out["incomplete_details"] = {"reason": "max_output_tokens"}
        if error is not None:
            out["error"] = error
        return out


class ResponseEvents:
    """Encodes one response's SSE events in order: `response.created`, the output items with their
    parts and deltas, then `response.completed` (`response.incomplete` at the token limit) or
    `response.failed`."""

    def __init__(self, response: ResponseObject) -> None:
        self._response = response
        self._failed = False
        self._seq = 0
        self._tag = response.id.removeprefix("resp_")
        self._message_id = f"msg_{self._tag}"
        self._text_open = False
        self._delta_head = b'"item_id":"%s","output_index":0,"content_index":0,"logprobs":[],"delta":' % (
            self._message_id.encode()
        )

    def encode(self, event: Event) -> bytes:
        """The SSE frames of one of the stream's events (b"": none). `retry` is invisible (the engine
        never retries after content here); `tool_call` and `tool_result` stay inside the proxy,
        which runs the agent's tools itself; calls of the client's tools come with `end`."""
        if isinstance(event, Delta):
            return self.delta(event.text)
        if isinstance(event, Heartbeat):
            return KEEPALIVE
        if isinstance(event, Start):
            return self.started()
        if isinstance(event, Output):
            return b"" if event.partial else self.delta(encode_json(event.data).decode())
        if isinstance(event, Error):
            self._failed = True
            return self.failed(event)
        if isinstance(event, End) and not self._failed:
            # An `end` without `error` that stopped early (shutdown) must not look complete either.
            early = stream_error(event, None)
            if early is not None:
                return self.failed(early)
            status: Status = "incomplete" if event.finish_reason == "length" else "completed"
            return self.finished(content_text(event), event.tool_calls or [], event.usage, status)
        return b""

    def _event(self, kind: str, body: dict[str, Any]) -> bytes:
        seq = self._seq
        self._seq += 1
        data = encode_json({"type": kind, "sequence_number": seq, **body})
        return b"event: %s\ndata: %s\n\n" % (kind.encode(), data)

    def started(self) -> bytes:
        response = self._response.at("in_progress")
        return self._event("response.created", {"response": response}) + self._event(
            "response.in_progress", {"response": response}
        )

    def _open_text(self) -> bytes:
        self._text_open = True
        item = message_item(self._message_id, "", "in_progress")
        item["content"] = []
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        return self._event("response.output_item.added", {"output_index": 0, "item": item}) + self._event(
            "response.content_part.added",
            {"item_id": self._message_id, "output_index": 0, "content_index": 0, "part": part},
        )

    def delta(self, text: str) -> bytes:
        head = b"" if self._text_open else self._open_text()
        seq = self._seq
        self._seq += 1
        return head + (
            b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
            b'"sequence_number":%d,%b%b}\n\n' % (seq, self._delta_head, encode_json(text))
        )

    def _close_text(self, text: str) -> bytes:
        where = {"item_id": self._message_id, "output_index": 0, "content_index": 0}
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        return (
            self._event("response.output_text.done", {**where, "text": text, "logprobs": []})
            + self._event("response.content_part.done", {**where, "part": part})
            + self._event(
                "response.output_item.done", {"output_index": 0, "item": message_item(self._message_id, text)}
            )
        )

    def _calls(self, calls: list[FunctionCall], first: int) -> bytes:
        out = b""
        for i, call in enumerate(calls):
            index, item_id = first + i, f"fc_{self._tag}_{i}"
            where = {"item_id": item_id, "output_index": index}
            out += self._event(
                "response.output_item.added",
                {"output_index": index, "item": call_item(item_id, call, "in_progress")},
            )
            out += self._event("response.function_call_arguments.delta", {**where, "delta": call.arguments})
            out += self._event(
                "response.function_call_arguments.done",
                {**where, "name": call.name, "arguments": call.arguments},
            )
            out += self._event(
                "response.output_item.done", {"output_index": index, "item": call_item(item_id, call)}
            )
        return out

    def finished(self, text: str, calls: list[FunctionCall], used: Usage, status: Status) -> bytes:
        """The open items closed, the client's calls, then `response.completed` or `.incomplete`."""
        out = b""
        streamed = self._text_open
        if text or streamed or not calls:
            if not streamed:
                out += self._open_text()
            out += self._close_text(text)
        out += self._calls(calls, 1 if self._text_open else 0)
        response = self._response.at(status, output_items(self._response.id, text, calls, streamed), used)
        return out + self._event(f"response.{status}", {"response": response})

    def failed(self, error: Error) -> bytes:
        response = self._response.at("failed", error=failure(error))
        return self._event("response.failed", {"response": response})


STORED_ECHO: dict[str, Any] = {
    "instructions": None,
    "max_output_tokens": None,
    "metadata": {},
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "store": True,
    "temperature": None,
    "text": {"format": {"type": "text"}},
    "tool_choice": "auto",
    "tools": [],
    "top_p": None,
}
"""A stored response's request fields: the conversation store keeps its messages, not its request."""
