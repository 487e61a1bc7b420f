"""The Vercel AI SDK's UI message stream (DESIGN 12): `POST /v1/agents/{agent}/vercel-ai`.

The body is what the SDK's `DefaultChatTransport` (`useChat`) sends, `{id, messages}` with UI
messages made of `parts`; the last user message is the prompt, the others are history, and the
client keeps that history (nothing is stored). The answer is SSE of JSON parts: `start`,
`text-start` / `text-delta` / `text-end`, `tool-input-available` / `tool-output-*` for the tools
the proxy ran (`dynamic`, `providerExecuted`), `data-output` snapshots of structured output,
`data-retry`, `error`, `finish` (its `messageMetadata` carries usage, attempts and TTFT), then
`data: [DONE]`. Heartbeats are SSE comments.

A retry with `discard: true` ends the open text part with `providerMetadata.agent_proxy.discarded`
and adds a `data-retry` part, so the discarded text stays a part of its own that a UI can strike
through, never glued to the new text; sent back as history, discarded parts are left out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, cast

from proxy.engine.inputs import ChatMessage, Content, text_parts
from proxy.errors import RequestError
from proxy.events import Delta, End, Error, Event, Heartbeat, Output, Retry, Start, ToolCall, ToolResult
from proxy.transports.collect import stream_error
from proxy.transports.sse import KEEPALIVE, SSE_HEADERS, ChatProtocol, Encoder
from proxy.transports.wire import DISCARDED, encode_json, is_discarded, own_fields

Role = Literal["system", "user", "assistant"]
HEADERS = {**SSE_HEADERS, "x-vercel-ai-ui-message-stream": "v1"}
DONE = b"data: [DONE]\n\n"

# The SDK's finish reasons have no timeout: a stream that timed out failed.
_FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool-calls",  # only the OpenAI endpoint takes the client's tools; kept total
    "error": "error",
    "timeout": "error",
    "cancelled": "interrupted",
    "shutdown": "interrupted",
}


# --- the request body -------------------------------------------------------------------------


def _invalid(message: str) -> RequestError:
    return RequestError(400, "invalid_messages", message)


def _text(parts: object, where: str, role: str) -> Content:
    if not isinstance(parts, list):
        raise _invalid(f"{where}.parts must be an array of parts")
    texts: list[str] = []
    for i, part in enumerate(parts):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise _invalid(f"{where}.parts[{i}] must be an object with a `type`")
        kind = part["type"]
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise _invalid(f"{where}.parts[{i}].text must be a string")
            if not is_discarded(part.get("providerMetadata")):
                texts.append(text)
        elif kind == "file" and role != "assistant":
            raise _invalid(f"{where}.parts[{i}]: only text parts are supported")
        # Other parts (tools the proxy ran, data, steps, reasoning) are not model input.
    return text_parts(texts)


def parse_ui_messages(body: dict[str, Any]) -> list[ChatMessage]:
    """The SDK's `messages` (UI messages with `parts`) as chat messages; unknown fields are ignored."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid("`messages` must be a non-empty array of UI messages")
    out: list[ChatMessage] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _invalid(f"{where} must be an object")
        role = message.get("role")
        if role not in ("system", "user", "assistant"):
            raise _invalid(f"{where}.role must be system, user or assistant")
        text = _text(message.get("parts"), where, role)
        out.append(ChatMessage(role=cast(Role, role), content=text))
    return out


# --- the answer ---------------------------------------------------------------------------------


def _part(chunk: dict[str, Any]) -> bytes:
    return b"data: %s\n\n" % encode_json(chunk)


class UIMessageStream:
    """Encodes one stream's events as UI message stream parts; keeps which text part is open."""

    def __init__(self, stream_id: str) -> None:
        self._stream_id = stream_id
        self._text_id: str | None = None
        self._texts = 0
        self._error: Error | None = None

    def _close_text(self, discarded: bool = False) -> bytes:
        if self._text_id is None:
            return b""
        chunk: dict[str, Any] = {"type": "text-end", "id": self._text_id}
        if discarded:
            chunk["providerMetadata"] = DISCARDED
        self._text_id = None
        return _part(chunk)

    def encode(self, event: Event) -> bytes:
        if isinstance(event, Delta):
            head = b""
            if self._text_id is None:
                self._texts += 1
                self._text_id = f"{self._stream_id}-text-{self._texts}"
                head = _part({"type": "text-start", "id": self._text_id})
            return head + _part({"type": "text-delta", "id": self._text_id, "delta": event.text})
        if isinstance(event, Heartbeat):
            return KEEPALIVE
        if isinstance(event, Start):
            meta = {"stream_id": event.stream_id, "agent": event.agent, "model": event.model}
            return _part({"type": "start", "messageId": event.stream_id, "messageMetadata": meta})
        if isinstance(event, Output):
            # One part, updated in place by the SDK: the same type and id replace its data.
            return _part({"type": "data-output", "id": "output", "data": event.data})
        if isinstance(event, ToolCall):
            return self._close_text() + _part(
                {
                    "type": "tool-input-available",
                    "toolCallId": event.tool_call_id,
                    "toolName": event.name,
                    "input": event.args,
                    "dynamic": True,
                    "providerExecuted": True,
                }
            )
        if isinstance(event, ToolResult):
            done: dict[str, Any] = {
                "toolCallId": event.tool_call_id,
                "dynamic": True,
                "providerExecuted": True,
            }
            if event.outcome == "success":
                return _part({"type": "tool-output-available", **done, "output": event.content})
            return _part({"type": "tool-output-error", **done, "errorText": str(event.content)})
        if isinstance(event, Retry):
            retry = _part({"type": "data-retry", "data": own_fields(event)})
            return self._close_text(discarded=event.discard) + retry
        if isinstance(event, Error):
            self._error = event
            return self._close_text() + _part({"type": "error", "errorText": event.message})
        if isinstance(event, End):
            return self._finish(event)
        return b""

    def _finish(self, end: End) -> bytes:
        out = self._close_text()
        # An `end` that stopped early without an `error` (shutdown, cancel) must not look complete.
        error = self._error
        if error is None:
            error = stream_error(end, None)
            if error is not None:
                out += _part({"type": "error", "errorText": error.message})
        meta: dict[str, Any] = {
            "finish_reason": end.finish_reason,
            "attempts": end.attempts,
            "usage": end.to_dict()["usage"],
            "ttft_s": end.ttft_s,
            "duration_s": end.duration_s,
        }
        if error is not None:
            meta["error"] = {"code": error.code, "retryable": error.retryable}
        finish = {
            "type": "finish",
            "finishReason": _FINISH_REASONS[end.finish_reason],
            "messageMetadata": meta,
        }
        return out + _part(finish) + DONE


def _parse(body: dict[str, Any]) -> tuple[list[ChatMessage], Callable[[str], Encoder]]:
    return parse_ui_messages(body), lambda stream_id: UIMessageStream(stream_id).encode


VERCEL_AI = ChatProtocol(transport="vercel_ai", parse=_parse, headers=HEADERS)
