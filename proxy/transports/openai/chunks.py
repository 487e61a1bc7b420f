"""Encoding answers in OpenAI's shapes: `chat.completion.chunk` SSE lines (the per-delta path is
one `dumps` of the text) and the non-streaming `chat.completion` object."""

from __future__ import annotations

from typing import Any

from proxy.events import End, FunctionCall
from proxy.transports.wire import encode_json

KEEPALIVE = b": keepalive\n\n"
DONE = b"data: [DONE]\n\n"


def usage(end: End) -> dict[str, int]:
    prompt, completion = end.usage.input_tokens, end.usage.output_tokens
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def content_text(end: End) -> str:
    if end.output is not None:
        return encode_json(end.output).decode()
    return end.text or ""


class Chunks:
    """Encodes one stream's `chat.completion.chunk` lines; the per-delta path is one `dumps` of the text."""

    def __init__(self, completion_id: str, created: int, model: str) -> None:
        self._id = completion_id
        self._created = created
        self._head = b'data: {"id":%s,"object":"chat.completion.chunk","created":%d,"model":%s,' % (
            encode_json(completion_id),
            created,
            encode_json(model),
        )

    def answered_by(self, model: str) -> Chunks:
        """The same stream's chunks naming `model`: the closing chunks carry `end.model`, so that a
        client can tell which model answered (a fallback's name when a fallback did)."""
        return Chunks(self._id, self._created, model)

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
        return self._line({"choices": [], "usage": usage(end)})

    def tool_calls(self, calls: list[FunctionCall]) -> bytes:
        """Each call as OpenAI streams one: its id, type and name with empty `arguments` first,
        then the arguments (clients concatenate the fragments of each `index`)."""
        out = b""
        for index, call in enumerate(calls):
            head = {
                "index": index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            out += self.choice({"tool_calls": [head]})
            out += self.choice({"tool_calls": [{"index": index, "function": {"arguments": call.arguments}}]})
        return out


def _message(end: End) -> dict[str, Any]:
    if end.tool_calls is None:
        return {"role": "assistant", "content": content_text(end), "refusal": None}
    calls = [
        {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
        for call in end.tool_calls
    ]
    return {"role": "assistant", "content": end.text or None, "refusal": None, "tool_calls": calls}


def completion(completion_id: str, created: int, end: End) -> dict[str, Any]:
    """The `chat.completion` object of a stream that ended well; its `model` is the one that answered."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": end.model,
        "choices": [
            {
                "index": 0,
                "message": _message(end),
                "logprobs": None,
                "finish_reason": end.finish_reason,
            }
        ],
        "usage": usage(end),
    }
