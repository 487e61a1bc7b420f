"""What a stream runs on: the prompt, the history before it, per-request model options, and what
an OpenAI client adds: its own tools and the format of the answer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic_ai.messages import (
    BinaryImage,
    ImageUrl,
    ModelMessage,
    ModelRequest,
    ModelRequestPart,
    ModelResponse,
    ModelResponsePart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.settings import ModelSettings

from proxy.engine.refusals import InvalidMessages
from proxy.events import FunctionCall


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Model settings a client may choose per request (the OpenAI endpoint's sampling fields)."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] | None = None
    user: str | None = None
    parallel_tool_calls: bool | None = None

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
        if self.parallel_tool_calls is not None:
            settings["parallel_tool_calls"] = self.parallel_tool_calls
        return settings or None


@dataclass(frozen=True, slots=True)
class Image:
    """An image part of a user message (or a tool's result): at `url`, or inline `data`."""

    url: str | None = None
    data: bytes | None = None
    media_type: str = "image/png"
    """Of inline `data` (a URL's is guessed from it)."""

    def user_content(self) -> ImageUrl | BinaryImage:
        """The part as pydantic-ai hands it to the model."""
        if self.data is not None:
            return BinaryImage(data=self.data, media_type=self.media_type)
        return ImageUrl(url=self.url or "")


Part = str | Image
Content = str | tuple[Part, ...]
"""A message's content: one string, or parts kept apart (OpenAI's list-of-parts content): text, and
images in user messages."""
PromptPart = str | ImageUrl | BinaryImage
"""A part of a prompt as pydantic-ai takes it."""


def text_parts(texts: Sequence[Part]) -> Content:
    """A message's parts as `Content`: one text part is plain text, several stay apart."""
    if len(texts) == 1 and isinstance(texts[0], str):
        return texts[0]
    return tuple(texts) if texts else ""


def content_text(content: Content | Sequence[PromptPart]) -> str:
    """All of a message's text, for the checks that look at it as a whole (blank, too long)."""
    return content if isinstance(content, str) else "".join(p for p in content if isinstance(p, str))


def has_images(content: Content | Sequence[PromptPart]) -> bool:
    """Whether `content` holds an image (a prompt of an image alone is not blank)."""
    return not isinstance(content, str) and any(not isinstance(p, str) for p in content)


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Content
    tool_calls: tuple[FunctionCall, ...] = ()
    """An assistant's calls of the client's tools."""
    tool_call_id: str | None = None
    """Which call a `tool` message answers."""


@dataclass(frozen=True, slots=True)
class ClientTool:
    """A function the client offers the model; the client runs it, not the proxy."""

    name: str
    parameters: dict[str, Any]
    """Its arguments as a JSON Schema object."""
    description: str | None = None
    strict: bool = False


@dataclass(frozen=True, slots=True)
class ClientTools:
    """The client's tools and which of them the model may or must call (OpenAI's `tool_choice`)."""

    tools: tuple[ClientTool, ...]
    choice: Literal["auto", "none", "required"] = "auto"
    forced: str | None = None
    """The one tool the model must call (a named `tool_choice`)."""


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """The answer is a JSON object: any (`json_object`) or one matching `schema` (`json_schema`)."""

    schema: dict[str, Any] | None = None
    name: str = "response"
    description: str | None = None
    strict: bool = False


@dataclass(slots=True)
class StreamInput:
    prompt: str | list[PromptPart] | None
    """The user's prompt: one string, or parts (text, images) that reach the model as separate
    parts; None when the history ends with the results of the client's tools, which the model answers."""
    history: list[ModelMessage] = field(default_factory=list)
    conversation_id: str | None = None
    """Where the finished run is stored; None: the client keeps the history (OpenAI endpoint)."""
    new_conversation: bool = False
    instructions: str | None = None
    """Instructions added to the agent's own for this request."""
    options: RunOptions | None = None
    mid_stream: Literal["restart", "fail"] | None = None
    """Overrides the agent's `retry.mid_stream`: a client that cannot discard text needs `fail`."""
    tools: ClientTools | None = None
    response_format: ResponseFormat | None = None

    @property
    def plain(self) -> bool:
        """A prompt for text, nothing the client adds: the direct model stream can answer it."""
        return self.prompt is not None and self.tools is None and self.response_format is None


def _prompt(content: Content) -> str | list[PromptPart]:
    if isinstance(content, str):
        return content
    return [part if isinstance(part, str) else part.user_content() for part in content]


def chat_input(
    messages: list[ChatMessage],
    allow_system: bool,
    options: RunOptions | None,
    *,
    tools: ClientTools | None = None,
    response_format: ResponseFormat | None = None,
    discards: bool = False,
    prior: Sequence[ModelMessage] = (),
) -> StreamInput:
    """An OpenAI-style message list -> the last user message as prompt, the rest as history; when it
    ends with `tool` messages, all of it is history and the model answers the tool results.

    System messages become instructions only when the agent allows it; otherwise they are dropped,
    so a client cannot override the agent's instructions. A client that can drop text it was sent
    (`discards`: the UI protocols) keeps the agent's `mid_stream` policy; others get `fail`.
    `prior` is a stored history that comes before `messages` (the Responses API's
    `previous_response_id`): tool results in `messages` may answer its calls.
    """
    if not messages or messages[-1].role not in ("user", "tool"):
        raise InvalidMessages("the last message must have role 'user' or 'tool'")
    prompt = _prompt(messages[-1].content) if messages[-1].role == "user" else None
    system: list[str] = []
    history: list[ModelMessage] = list(prior)
    called: dict[str, str] = {
        part.tool_call_id: part.tool_name
        for message in prior
        if isinstance(message, ModelResponse)
        for part in message.parts
        if isinstance(part, ToolCallPart)
    }
    """Tool call id -> the tool's name, for the results that answer them."""
    for message in messages[:-1] if prompt is not None else messages:
        content = message.content
        if message.role in ("system", "developer"):
            system.append(content if isinstance(content, str) else "\n\n".join(_texts(content)))
        elif message.role == "user":
            history.append(ModelRequest(parts=[UserPromptPart(content=_prompt(content))]))
        elif message.role == "tool":
            _add_request_part(history, _tool_return(message, called))
        else:
            called.update((call.id, call.name) for call in message.tool_calls)
            history.append(ModelResponse(parts=_response_parts(message)))
    return StreamInput(
        prompt=prompt,
        history=history,
        instructions="\n\n".join(system) if allow_system and system else None,
        options=options,
        mid_stream=None if discards else "fail",
        tools=tools,
        response_format=response_format,
    )


def _response_parts(message: ChatMessage) -> list[ModelResponsePart]:
    content = message.content
    texts = [content] if isinstance(content, str) else _texts(content)
    if message.tool_calls:
        texts = [text for text in texts if text]  # `content: null` beside tool calls
    calls = [ToolCallPart(call.name, call.arguments, call.id) for call in message.tool_calls]
    return [*(TextPart(content=text) for text in texts), *calls]


def _tool_return(message: ChatMessage, called: dict[str, str]) -> ToolReturnPart:
    call_id = message.tool_call_id or ""
    name = called.get(call_id)
    if name is None:
        raise InvalidMessages(f"tool message answers no earlier tool call ({call_id!r})")
    content = message.content
    if has_images(content):  # pydantic-ai sends a result's images to the model as a user message
        return ToolReturnPart(name, _prompt(content), call_id)
    return ToolReturnPart(name, content_text(content), call_id)


def _texts(parts: tuple[Part, ...]) -> list[str]:
    return [part for part in parts if isinstance(part, str)]


def _add_request_part(history: list[ModelMessage], part: ModelRequestPart) -> None:
    """Results of one response's calls go back in one request, as pydantic-ai sends them."""
    last = history[-1] if history else None
    if isinstance(last, ModelRequest) and all(isinstance(p, ToolReturnPart) for p in last.parts):
        last.parts = [*last.parts, part]
    else:
        history.append(ModelRequest(parts=[part]))
