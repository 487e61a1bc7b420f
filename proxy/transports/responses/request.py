"""The Responses API's request body -> what the engine runs (`ResponsesRequest`); every field it
cannot take is a 400 that names it (`InvalidParam`), and the documented ones it ignores pass."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, replace
from typing import Any

from proxy.engine.inputs import (
    ChatMessage,
    ClientTool,
    ClientTools,
    Image,
    Part,
    ResponseFormat,
    RunOptions,
    text_parts,
)
from proxy.events import FunctionCall
from proxy.transports.openai.errors import InvalidParam
from proxy.transports.openai.tools import flag, function_tool, json_schema, parallel_tool_calls, with_choice

ROLES = frozenset({"user", "assistant", "system", "developer"})
TEXT_KEYS = {"input_text": "text", "output_text": "text", "refusal": "refusal"}
"""Content parts of text, and the key of their text."""
DROPPED_ITEMS = frozenset({"reasoning"})
"""Input items the proxy drops: a reasoning item is opaque to any upstream but the one that made it."""
REFUSED = ("background", "conversation", "prompt")
"""Fields that would change what the answer is, which the proxy cannot honour."""


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    model: str
    messages: list[ChatMessage]
    options: RunOptions
    stream: bool
    store: bool
    previous_response_id: str | None
    tools: ClientTools | None
    response_format: ResponseFormat | None
    echo: dict[str, Any]
    """What the response object repeats of the request (`instructions`, `tools`, `metadata`, ...)."""


def _object(value: object, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidParam(param, f"`{param}` must be an object")
    return value


def _string(value: object, param: str) -> str:
    if not isinstance(value, str):
        raise InvalidParam(param, f"`{param}` must be a string")
    return value


def _optional_string(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    return None if value is None else _string(value, key)


def _image(part: dict[str, Any], param: str) -> Image:
    """An `input_image` at a URL, or inline as a `data:` URL."""
    if part.get("file_id") is not None:
        raise InvalidParam(f"{param}.file_id", "images by `file_id` are not supported; send `image_url`")
    url = _string(part.get("image_url"), f"{param}.image_url")
    if not url.startswith("data:"):
        return Image(url=url)
    head, _, data = url.partition(",")
    media_type = head[5:].removesuffix(";base64")
    if not head.endswith(";base64") or not media_type.startswith("image/"):
        raise InvalidParam(f"{param}.image_url", "a data URL is `data:image/<type>;base64,<data>`")
    try:
        return Image(data=base64.b64decode(data, validate=True), media_type=media_type)
    except binascii.Error:
        raise InvalidParam(f"{param}.image_url", "the data URL is not base64") from None


def _parts(value: object, param: str, images: bool = False) -> list[Part]:
    """A string, or a list of content parts: text (`input_text`, `output_text`, `refusal`) and,
    where `images`, `input_image`."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise InvalidParam(param, "`content` must be a string or a list of content parts")
    parts: list[Part] = []
    for i, raw in enumerate(value):
        part = _object(raw, f"{param}[{i}]")
        kind = part.get("type")
        key = TEXT_KEYS.get(kind) if isinstance(kind, str) else None  # a list is unhashable
        if kind == "input_image" and images:
            parts.append(_image(part, f"{param}[{i}]"))
        elif key is not None:
            parts.append(_string(part.get(key), f"{param}[{i}].{key}"))
        else:
            raise InvalidParam(f"{param}[{i}].type", f"content parts of type {kind!r} are not supported here")
    return parts


def _message(item: dict[str, Any], param: str) -> ChatMessage:
    role = item.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise InvalidParam(
            f"{param}.role", f"role {role!r} is not supported; use user, assistant, system or developer"
        )
    content = text_parts(_parts(item.get("content"), f"{param}.content", images=role == "user"))
    return ChatMessage(role=role, content=content)  # type: ignore[arg-type]  # checked against ROLES


def _call(item: dict[str, Any], param: str) -> FunctionCall:
    return FunctionCall(
        id=_string(item.get("call_id"), f"{param}.call_id"),
        name=_string(item.get("name"), f"{param}.name"),
        arguments=_string(item.get("arguments"), f"{param}.arguments"),
    )


def _messages(value: object) -> list[ChatMessage]:
    """`input` as the engine's message list: a function call joins the assistant message before it
    (parallel calls are one assistant turn), and its output is a `tool` message."""
    if isinstance(value, str):
        return [ChatMessage(role="user", content=value)]
    if not isinstance(value, list) or not value:
        raise InvalidParam("input", "`input` must be a string or a non-empty array of input items")
    out: list[ChatMessage] = []
    for i, raw in enumerate(value):
        param = f"input[{i}]"
        item = _object(raw, param)
        kind = item.get("type", "message")  # the Agents SDK sends messages without a `type`
        if not isinstance(kind, str):
            raise InvalidParam(f"{param}.type", "an input item's `type` must be a string")
        if kind == "message":
            out.append(_message(item, param))
        elif kind == "function_call":
            call = _call(item, param)
            last = out[-1] if out else None
            if last is not None and last.role == "assistant":
                out[-1] = replace(last, tool_calls=(*last.tool_calls, call))
            else:
                out.append(ChatMessage(role="assistant", content="", tool_calls=(call,)))
        elif kind == "function_call_output":
            output = text_parts(_parts(item.get("output"), f"{param}.output", images=True))
            call_id = _string(item.get("call_id"), f"{param}.call_id")
            out.append(ChatMessage(role="tool", content=output, tool_call_id=call_id))
        elif kind not in DROPPED_ITEMS:
            raise InvalidParam(f"{param}.type", f"input items of type {kind!r} are not supported")
    if not out:
        raise InvalidParam("input", "`input` has no message or function call output")
    return out


def _tools(body: dict[str, Any]) -> ClientTools | None:
    """The function tools; tools of every other type (hosted ones such as `web_search`, `custom`
    tools, `namespace` groups) are not offered to the model: the proxy can neither run them nor
    hand their calls back in a shape the client expects."""
    raw, choice = body.get("tools"), body.get("tool_choice")
    if raw is not None and not isinstance(raw, list):
        raise InvalidParam("tools", "`tools` must be an array")
    tools: list[ClientTool] = []
    for i, value in enumerate(raw or ()):
        tool = _object(value, f"tools[{i}]")
        kind = tool.get("type")
        if not isinstance(kind, str):
            raise InvalidParam(f"tools[{i}].type", "a tool needs a `type`")
        if kind != "function":
            continue
        fn = function_tool(tool, f"tools[{i}]")
        if any(t.name == fn.name for t in tools):
            raise InvalidParam(f"tools[{i}].name", f"two tools are named {fn.name!r}")
        tools.append(fn)
    if not tools:
        if choice == "required":
            raise InvalidParam("tool_choice", "`tool_choice` 'required' needs function tools")
        if choice is None or choice in ("none", "auto"):
            return None
    name = choice.get("name") if isinstance(choice, dict) and choice.get("type") == "function" else None
    return with_choice(tools, choice, name, "{type: function, name}")


def _text_format(value: object) -> ResponseFormat | None:
    """`text.format`: None for plain text."""
    if value is None:
        return None
    fmt = _object(_object(value, "text").get("format", {"type": "text"}), "text.format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat()
    if kind != "json_schema":
        raise InvalidParam("text.format.type", "`text.format.type` is text, json_object or json_schema")
    return json_schema(fmt, "text.format")


def _max_output_tokens(body: dict[str, Any]) -> int | None:
    value = body.get("max_output_tokens")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InvalidParam("max_output_tokens", "`max_output_tokens` must be a positive integer")
    return value


def _number(body: dict[str, Any], key: str, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= high:
        raise InvalidParam(key, f"`{key}` must be a number from 0 to {high:g}")
    return float(value)


def _metadata(value: object) -> dict[str, str]:
    if value is None:
        return {}
    metadata = _object(value, "metadata")
    if len(metadata) > 16 or not all(
        len(k) <= 64 and isinstance(v, str) and len(v) <= 512 for k, v in metadata.items()
    ):
        raise InvalidParam("metadata", "`metadata` is at most 16 string values, keys up to 64 characters")
    return metadata


def _refuse(body: dict[str, Any]) -> None:
    for key in REFUSED:
        value = body.get(key)
        if value is not None and value is not False:
            raise InvalidParam(key, f"`{key}` is not supported by this proxy")


def parse_responses_request(body: dict[str, Any]) -> ResponsesRequest:
    """The Responses API's body -> what the engine needs. Unknown fields and those that only tune
    OpenAI's own service (`reasoning`, `include`, `prompt_cache_key`, `client_metadata`,
    `service_tier`, `truncation`, ...) are ignored; known ones the proxy cannot honour are refused."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidParam("model", "`model` must be the name of an agent or alias (see GET /v1/models)")
    _refuse(body)
    messages = _messages(body.get("input"))
    instructions = _optional_string(body, "instructions")
    if instructions:
        messages.insert(0, ChatMessage(role="system", content=instructions))
    previous = _optional_string(body, "previous_response_id")
    store = body.get("store") is None or flag(body.get("store"), "store")
    tools = _tools(body)
    temperature, top_p = _number(body, "temperature", 2), _number(body, "top_p", 1)
    max_output_tokens = _max_output_tokens(body)
    parallel = parallel_tool_calls(body.get("parallel_tool_calls"))
    options = RunOptions(
        max_tokens=max_output_tokens,
        temperature=temperature,
        top_p=top_p,
        user=_optional_string(body, "user"),
        parallel_tool_calls=parallel,
    )
    echo = {
        "instructions": instructions,
        "max_output_tokens": max_output_tokens,
        "metadata": _metadata(body.get("metadata")),
        "parallel_tool_calls": True if parallel is None else parallel,
        "previous_response_id": previous,
        "store": store,
        "temperature": temperature,
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "top_p": top_p,
    }
    return ResponsesRequest(
        model=model,
        messages=messages,
        options=options,
        stream=flag(body.get("stream"), "stream"),
        store=store,
        previous_response_id=previous,
        tools=tools,
        response_format=_text_format(body.get("text")),
        echo=echo,
    )
