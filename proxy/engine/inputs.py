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


Content = str | tuple[str, ...]
"""A message's text: one string, or text parts kept apart (OpenAI's list-of-parts content)."""


def text_parts(texts: list[str]) -> Content:
    """A message's text parts as `Content`: one part is plain text, several stay apart."""
    if len(texts) == 1:
        return texts[0]
    return tuple(texts) if texts else ""


def content_text(content: Content | list[str]) -> str:
    """All of a message's text, for the checks that look at it as a whole (blank, too long)."""
    return content if isinstance(content, str) else "".join(content)


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "developer", "user", "assistant"]
    content: Content


@dataclass(slots=True)
class StreamInput:
    prompt: str | list[str]
    """The user's prompt: one string, or text parts that reach the model as separate parts."""
    history: list[ModelMessage] = field(default_factory=list)
    conversation_id: str | None = None
    """Where the finished run is stored; None: the client keeps the history (OpenAI endpoint)."""
    new_conversation: bool = False
    instructions: str | None = None
    """Instructions added to the agent's own for this request."""
    options: RunOptions | None = None
    mid_stream: Literal["restart", "fail"] | None = None
    """Overrides the agent's `retry.mid_stream`: a client that cannot discard text needs `fail`."""


def _prompt(content: Content) -> str | list[str]:
    return content if isinstance(content, str) else list(content)


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
        content = message.content
        if message.role in ("system", "developer"):
            system.append(content if isinstance(content, str) else "\n\n".join(content))
        elif message.role == "user":
            history.append(ModelRequest(parts=[UserPromptPart(content=_prompt(content))]))
        else:
            texts = [content] if isinstance(content, str) else content
            history.append(ModelResponse(parts=[TextPart(content=text) for text in texts]))
    return StreamInput(
        prompt=_prompt(messages[-1].content),
        history=history,
        instructions="\n\n".join(system) if allow_system and system else None,
        options=options,
        mid_stream=None if discards else "fail",
    )
