"""OpenAI's Chat Completions request body -> what the engine runs (`ChatRequest`); every field
it cannot take is a 400 that names it (`InvalidParam`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

from proxy.engine.inputs import ChatMessage, ClientTools, Content, ResponseFormat, RunOptions
from proxy.transports.openai.errors import InvalidParam
from proxy.transports.openai.tools import (
    client_tools,
    flag,
    parallel_tool_calls,
    response_format,
    tool_calls,
)

Role = Literal["system", "developer", "user", "assistant", "tool"]
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: list[ChatMessage]
    options: RunOptions
    stream: bool
    include_usage: bool
    tools: ClientTools | None = None
    response_format: ResponseFormat | None = None


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
    called: set[str] = set()
    """Ids of the tool calls so far: each `tool` message answers one of them."""
    for i, message in enumerate(value):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidParam(param, "a message must be an object")
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:  # a list or object is unhashable
            raise InvalidParam(
                f"{param}.role",
                f"role {role!r} is not supported; use system, developer, user, assistant or tool",
            )
        calls = tool_calls(message.get("tool_calls"), f"{param}.tool_calls") if role == "assistant" else ()
        called.update(call.id for call in calls)
        raw = message.get("content")
        content = "" if raw is None and calls else _content(raw, f"{param}.content")
        call_id = message.get("tool_call_id") if role == "tool" else None
        if role == "tool" and (not isinstance(call_id, str) or call_id not in called):
            raise InvalidParam(
                f"{param}.tool_call_id", "a tool message answers the `id` of an earlier tool call"
            )
        out.append(
            ChatMessage(role=cast(Role, role), content=content, tool_calls=calls, tool_call_id=call_id)
        )
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


def parse_chat_request(body: dict[str, Any]) -> ChatRequest:
    """OpenAI's request body -> what the engine needs; unknown fields are ignored, known ones the
    proxy cannot honour are refused."""
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
        parallel_tool_calls=parallel_tool_calls(body.get("parallel_tool_calls")),
    )
    include_usage = flag((stream_options or {}).get("include_usage"), "stream_options.include_usage")
    return ChatRequest(
        model,
        messages,
        options,
        flag(body.get("stream"), "stream"),
        include_usage,
        client_tools(body),
        response_format(body.get("response_format")),
    )
