"""Pre-encoded `chat.completion.chunk` SSE bytes and `chat.completion` bodies for a planned answer."""

from __future__ import annotations

from typing import Any, Final

import orjson

from proxy.mock_upstream.answer import Answer

DONE: Final[bytes] = b"data: [DONE]\n\n"
MALFORMED: Final[bytes] = b'data: {"id": "chatcmpl-malformed", "choices": [{"delta": {"content": "\n\n'
SSE_HEADERS: Final[dict[str, str]] = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def usage_dict(answer: Answer) -> dict[str, int]:
    return {
        "prompt_tokens": answer.input_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": answer.input_tokens + answer.output_tokens,
    }


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

    def usage(self, usage: dict[str, int]) -> bytes:
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


def completion_body(
    answer: Answer, completion_id: str, created: int, model: str, finish_reason: str | None, usage: bool
) -> dict[str, Any]:
    """A non-streaming `chat.completion`."""
    message: dict[str, Any] = {"role": "assistant", "content": None}
    call = answer.tool_call
    if call is None:
        message["content"] = answer.text
    else:
        message["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": answer.text}}
        ]
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
    }
    if usage:
        body["usage"] = usage_dict(answer)
    return body
