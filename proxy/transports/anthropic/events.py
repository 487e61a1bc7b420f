"""Encoding answers in Anthropic's shapes: the Messages stream's SSE events (the per-delta path is
one `dumps` of the text into a template) and the non-streaming `message` object.

A stream is `message_start`, then per content block `content_block_start`, its deltas and
`content_block_stop` (Claude Code drops a block's text without its stop), then `message_delta`
with `stop_reason` and the usage, and `message_stop`. The text streams as it comes; calls of the
client's tools are known when the engine's stream ends, and each follows as a `tool_use` block with
its input as one `input_json_delta`.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from proxy.events import End, FunctionCall
from proxy.transports.wire import encode_json

PING: Final = b'event: ping\ndata: {"type": "ping"}\n\n'
STOP_REASONS: Final = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
"""The engine's finish reason of a stream that succeeded -> Anthropic's `stop_reason`."""
_STOP_EVENT: Final = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (name.encode(), encode_json(data))


def usage(end: End) -> dict[str, int]:
    return {"input_tokens": end.usage.input_tokens, "output_tokens": end.usage.output_tokens}


def answer_text(end: End) -> str:
    """The answer as text: a structured answer is its JSON."""
    if end.output is not None:
        return encode_json(end.output).decode()
    return end.text or ""


def _tool_input(call: FunctionCall) -> Any:
    try:
        return orjson.loads(call.arguments or "{}")
    except orjson.JSONDecodeError:
        return {}  # the engine's calls carry JSON; never let a bad one crash the answer


class MessageEvents:
    """One stream's events, in order; `text` may be called any number of times before `finish`."""

    def __init__(self, message_id: str, model: str) -> None:
        self._id = message_id
        self._model = model
        self._index = 0
        """The index of the open text block, or of the next block."""
        self._text_open = False
        self._delta_head = b""

    def start(self) -> bytes:
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return _event("message_start", {"type": "message_start", "message": message})

    def text(self, text: str) -> bytes:
        if self._text_open:
            return self._delta_head + encode_json(text) + b"}}\n\n"
        self._text_open = True
        self._delta_head = (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
            b'"delta":{"type":"text_delta","text":' % self._index
        )
        opening = _event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": self._index,
                "content_block": {"type": "text", "text": ""},
            },
        )
        return opening + self.text(text)

    def _close_text(self) -> bytes:
        if not self._text_open:
            return b""
        self._text_open = False
        self._index += 1
        return _event("content_block_stop", {"type": "content_block_stop", "index": self._index - 1})

    def _tool_use(self, call: FunctionCall) -> bytes:
        index = self._index
        self._index += 1
        block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
        delta = {"type": "input_json_delta", "partial_json": call.arguments or "{}"}
        return (
            _event(
                "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}
            )
            + _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            + _event("content_block_stop", {"type": "content_block_stop", "index": index})
        )

    def finish(self, end: End) -> bytes:
        """The rest of a stream that succeeded: block stops, tool calls, `message_delta`, `message_stop`."""
        out = self._close_text()
        for call in end.tool_calls or ():
            out += self._tool_use(call)
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": STOP_REASONS[end.finish_reason], "stop_sequence": None},
            "usage": usage(end),
        }
        return out + _event("message_delta", delta) + _STOP_EVENT


def message(message_id: str, model: str, end: End) -> dict[str, Any]:
    """The `message` of a stream that ended well."""
    text = answer_text(end)
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text or not end.tool_calls else []
    content += [
        {"type": "tool_use", "id": call.id, "name": call.name, "input": _tool_input(call)}
        for call in end.tool_calls or ()
    ]
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS[end.finish_reason],
        "stop_sequence": None,
        "usage": usage(end),
    }
