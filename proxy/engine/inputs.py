"""What a stream runs on: the prompt, the history before it, and per-request model options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    UserPromptPart,
)
from pydantic_ai.settings import ModelSettings

from proxy.engine.refusals import InvalidMessages


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Model settings a client may choose per request (the OpenAI endpoint's sampling fields)."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] | None = None
    user: str | None = None

    def model_settings(self) -> ModelSettings | None:
        settings = ModelSettings()
        if self.max_tokens is not None:
            settings["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            settings["temperature"] = self.temperature
        if self.top_p is not None:
            settings["top_p"] = self.top_p
        if self.stop:
            settings["stop_sequences"] = list(self.stop)
        if self.user is not None:
            settings["extra_body"] = {"user": self.user}
        return settings or None


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "developer", "user", "assistant"]
    content: str


@dataclass(slots=True)
class StreamInput:
    prompt: str
    history: list[ModelMessage] = field(default_factory=list)
    conversation_id: str | None = None
    """Where the finished run is stored; None: the client keeps the history (OpenAI endpoint)."""
    new_conversation: bool = False
    instructions: str | None = None
    """Instructions added to the agent's own for this request."""
    options: RunOptions | None = None
    mid_stream: Literal["restart", "fail"] | None = None
    """Overrides the agent's `retry.mid_stream`: a client that cannot discard text needs `fail`."""


def chat_input(
    messages: list[ChatMessage], allow_system: bool, options: RunOptions | None, *, discards: bool = False
) -> StreamInput:
    """An OpenAI-style message list -> the last user message as prompt, the rest as history.

    System messages become instructions only when the agent allows it; otherwise they are dropped,
    so a client cannot override the agent's instructions. A client that can drop text it was sent
    (`discards`: the UI protocols) keeps the agent's `mid_stream` policy; others get `fail`.
    """
    if not messages or messages[-1].role != "user":
        raise InvalidMessages("the last message must have role 'user'")
    system: list[str] = []
    history: list[ModelMessage] = []
    for message in messages[:-1]:
        if message.role in ("system", "developer"):
            system.append(message.content)
        elif message.role == "user":
            history.append(ModelRequest(parts=[UserPromptPart(content=message.content)]))
        else:
            history.append(ModelResponse(parts=[TextPart(content=message.content)]))
    return StreamInput(
        prompt=messages[-1].content,
        history=history,
        instructions="\n\n".join(system) if allow_system and system else None,
        options=options,
        mid_stream=None if discards else "fail",
    )
