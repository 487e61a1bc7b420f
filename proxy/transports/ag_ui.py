"""AG-UI (DESIGN 12): `POST /v1/agents/{agent}/ag-ui`, with the `ag-ui-protocol` package's types.

The body is a `RunAgentInput`: its last message, a user message, is the prompt and the others are
history (the client keeps it; nothing is stored). Tools run inside the proxy, so the input's
`tools` are not offered to the model, and tool messages are not model input. The answer is SSE of
AG-UI events: `RUN_STARTED`, `TEXT_MESSAGE_START` / `_CONTENT` / `_END`, `TOOL_CALL_START` /
`_ARGS` / `_END` / `_RESULT`, `CUSTOM` (`output` snapshots of structured output, `retry`), then
`RUN_FINISHED` (its `result` holds the `end` event's fields) or `RUN_ERROR` (code and the same
fields in `metadata`). Heartbeats are SSE comments.

A retry with `discard: true` ends the open text message with `metadata.agent_proxy.discarded` and
sends `CUSTOM retry`; the new text is a new message, never glued to the discarded one, and a
discarded message sent back as history is left out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ag_ui.core import (
    AssistantMessage,
    BaseEvent,
    CustomEvent,
    DeveloperMessage,
    RunAgentInput,
    RunErrorEvent,
    RunFinishedEvent,
    RunStartedEvent,
    SystemMessage,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    TokenUsage,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
    UserMessage,
)
from ag_ui.encoder import EventEncoder
from pydantic import ValidationError

from proxy.engine.inputs import ChatMessage, Content, text_parts
from proxy.errors import RequestError
from proxy.events import Delta, End, Error, Event, Heartbeat, Output, Retry, Start, ToolCall, ToolResult
from proxy.transports.collect import stream_error
from proxy.transports.sse import KEEPALIVE, ChatProtocol, Encoder
from proxy.transports.wire import DISCARDED, encode_json, is_discarded, own_fields

_ENCODER = EventEncoder()


# --- the request body -------------------------------------------------------------------------


def _invalid(message: str) -> RequestError:
    return RequestError(400, "invalid_body", message)


def _user_text(message: UserMessage, where: str) -> Content:
    if isinstance(message.content, str):
        return message.content
    texts: list[str] = []
    for i, part in enumerate(message.content):
        if part.type != "text":
            raise _invalid(f"{where}.content[{i}]: only text parts are supported")
        texts.append(part.text)
    return text_parts(texts)


def parse_run_input(body: dict[str, Any]) -> tuple[RunAgentInput, list[ChatMessage]]:
    """The `RunAgentInput` and its messages as chat messages."""
    try:
        run = RunAgentInput.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise _invalid(f"not a RunAgentInput: {where}: {first['msg']}") from exc
    messages: list[ChatMessage] = []
    for i, message in enumerate(run.messages):
        if isinstance(message, UserMessage):
            messages.append(ChatMessage(role="user", content=_user_text(message, f"messages.{i}")))
        elif isinstance(message, (SystemMessage, DeveloperMessage)):
            messages.append(ChatMessage(role=message.role, content=message.content))
        elif isinstance(message, AssistantMessage) and not is_discarded(message.metadata):
            messages.append(ChatMessage(role="assistant", content=message.content or ""))
        # Tool, activity and reasoning messages are not model input: the proxy runs its own tools.
    return run, messages


# --- the answer ---------------------------------------------------------------------------------


def _encode(*events: BaseEvent) -> bytes:
    return "".join(_ENCODER.encode(e) for e in events).encode()


def _text(content: Any) -> str:
    return content if isinstance(content, str) else encode_json(content).decode()


class AGUIEvents:
    """Encodes one stream's events as AG-UI events; keeps which text message is open."""

    def __init__(self, run: RunAgentInput, stream_id: str) -> None:
        self._thread_id = run.thread_id
        self._run_id = run.run_id
        self._stream_id = stream_id
        self._message_id: str | None = None
        self._messages = 0
        self._error: Error | None = None
        self._model: str | None = None

    def _close_message(self, discarded: bool = False) -> list[BaseEvent]:
        if self._message_id is None:
            return []
        end = TextMessageEndEvent(message_id=self._message_id, metadata=DISCARDED if discarded else None)
        self._message_id = None
        return [end]

    def encode(self, event: Event) -> bytes:
        if isinstance(event, Delta):
            if not event.text:  # AG-UI content events carry at least one character
                return b""
            out: list[BaseEvent] = []
            if self._message_id is None:
                self._messages += 1
                self._message_id = f"{self._stream_id}-msg-{self._messages}"
                out.append(TextMessageStartEvent(message_id=self._message_id, role="assistant"))
            out.append(TextMessageContentEvent(message_id=self._message_id, delta=event.text))
            return _encode(*out)
        if isinstance(event, Heartbeat):
            return KEEPALIVE
        if isinstance(event, Start):
            self._model = event.model
            meta = {"stream_id": event.stream_id, "agent": event.agent, "model": event.model}
            return _encode(RunStartedEvent(thread_id=self._thread_id, run_id=self._run_id, metadata=meta))
        if isinstance(event, Output):
            return _encode(CustomEvent(name="output", value={"data": event.data, "partial": event.partial}))
        if isinstance(event, ToolCall):
            return _encode(
                *self._close_message(),
                ToolCallStartEvent(tool_call_id=event.tool_call_id, tool_call_name=event.name),
                ToolCallArgsEvent(tool_call_id=event.tool_call_id, delta=_text(event.args)),
                ToolCallEndEvent(tool_call_id=event.tool_call_id),
            )
        if isinstance(event, ToolResult):
            result = ToolCallResultEvent(
                message_id=f"{self._stream_id}-{event.tool_call_id}-result",
                tool_call_id=event.tool_call_id,
                content=_text(event.content),
                role="tool",
                metadata={"outcome": event.outcome},
            )
            return _encode(result)
        if isinstance(event, Retry):
            retry = CustomEvent(name="retry", value=own_fields(event))
            return _encode(*self._close_message(discarded=event.discard), retry)
        if isinstance(event, Error):
            # RUN_ERROR must be the run's last event: it goes out with the `end` that follows.
            self._error = event
            return b""
        if isinstance(event, End):
            return _encode(*self._close_message(), self._finish(event))
        return b""

    def _finish(self, end: End) -> BaseEvent:
        fields = own_fields(end)
        usage = [
            TokenUsage(
                model=self._model,
                input_tokens=end.usage.input_tokens,
                output_tokens=end.usage.output_tokens,
                total_tokens=end.usage.input_tokens + end.usage.output_tokens,
            )
        ]
        # An `end` that stopped early without an `error` (shutdown, cancel) must not look complete.
        error = self._error or stream_error(end, None)
        if error is None:
            return RunFinishedEvent(
                thread_id=self._thread_id, run_id=self._run_id, result=fields, usage=usage
            )
        fields["retryable"] = error.retryable
        return RunErrorEvent(message=error.message, code=error.code, metadata=fields, usage=usage)


def _parse(body: dict[str, Any]) -> tuple[list[ChatMessage], Callable[[str], Encoder]]:
    run, messages = parse_run_input(body)
    return messages, lambda stream_id: AGUIEvents(run, stream_id).encode


AG_UI = ChatProtocol(transport="ag_ui", parse=_parse)
