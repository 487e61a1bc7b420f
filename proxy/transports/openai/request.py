"""OpenAI's Chat Completions request body -> what the engine runs (`ChatRequest`); every field
it cannot take is a 400 that names it (`InvalidParam`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

from proxy.engine.inputs import ChatMessage, Content, RunOptions
from proxy.transports.openai.errors import InvalidParam

Role = Literal["system", "developer", "user", "assistant"]
ROLES = frozenset({"system", "developer", "user", "assistant"})


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: list[ChatMessage]
    options: RunOptions
    stream: bool
    include_usage: bool


def _content(value: object, param: str) -> Content:
    """A string, or a list of text parts kept as parts (gluing them would change the prompt)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts: list[str] = []
        for i, part in enumerate(value):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise InvalidParam(f"{param}[{i}]", "only content parts of type 'text' are supported")
            text = part.get("text")
            if not isinstance(text, str):
                raise InvalidParam(f"{param}[{i}].text", "a text part needs a string `text`")
            texts.append(text)
        return tuple(texts) if texts else ""
    raise InvalidParam(param, "`content` must be a string or a list of text parts")


def _messages(value: object) -> list[ChatMessage]:
    if not isinstance(value, list) or not value:
        raise InvalidParam("messages", "`messages` must be a non-empty array")
    out: list[ChatMessage] = []
    for i, message in enumerate(value):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidParam(param, "a message must be an object")
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:  # a list or object is unhashable
            raise InvalidParam(
                f"{param}.role", f"role {role!r} is not supported; use system, developer, user or assistant"
            )
        content = _content(message.get("content"), f"{param}.content")
        out.append(ChatMessage(role=cast(Role, role), content=content))
    return out


def _number(body: dict[str, Any], key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InvalidParam(key, f"`{key}` must be a number from {low:g} to {high:g}")
    return float(value)


def _max_tokens(body: dict[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidParam(key, f"`{key}` must be a positive integer")
        return value
    return None


def _stop(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return tuple(value) or None
    raise InvalidParam("stop", "`stop` must be a string or an array of strings")


def _flag(value: object, param: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidParam(param, f"`{param}` must be a boolean")
    return value


def parse_chat_request(body: dict[str, Any]) -> ChatRequest:
    """OpenAI's request body -> what the engine needs; unknown fields are ignored."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidParam("model", "`model` must be the name of an agent (see GET /v1/models)")
    messages = _messages(body.get("messages"))
    n = body.get("n")
    if n is not None and n != 1:
        raise InvalidParam("n", "only `n` = 1 is supported")
    stream_options = body.get("stream_options")
    if stream_options is not None and not isinstance(stream_options, dict):
        raise InvalidParam("stream_options", "`stream_options` must be an object")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise InvalidParam("user", "`user` must be a string")
    options = RunOptions(
        max_tokens=_max_tokens(body),
        temperature=_number(body, "temperature", 0, 2),
        top_p=_number(body, "top_p", 0, 1),
        stop=_stop(body.get("stop")),
        user=user,
    )
    include_usage = _flag((stream_options or {}).get("include_usage"), "stream_options.include_usage")
    return ChatRequest(model, messages, options, _flag(body.get("stream"), "stream"), include_usage)
