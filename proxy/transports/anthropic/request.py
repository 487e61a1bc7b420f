"""Anthropic's Messages request body -> what the engine runs (`MessagesRequest`); every field it
cannot take is a 400 that names it.

Taken: `model`, `messages`, `system`, `max_tokens`, `stop_sequences`, `temperature`, `top_p`,
`tools` (client tools), `tool_choice`, `stream`, and `output_config.format` / `output_format` (a JSON
Schema answer). Accepted and not forwarded: `thinking`, `output_config.effort`, `metadata`,
`context_management`, `service_tier` (what the upstream reasons and how is the agent's model's
affair). Refused: `top_k` (OpenAI-compatible upstreams have none), server tools, `mcp_servers`,
`container`. Other fields are ignored, as Anthropic's own betas add them faster than any proxy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from proxy.engine.inputs import ChatMessage, ClientTool, ClientTools, ResponseFormat, RunOptions
from proxy.transports.anthropic.content import chat_messages, system_text
from proxy.transports.anthropic.errors import InvalidRequest

_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""A tool name that an OpenAI-compatible upstream accepts too."""
REFUSED: Final = {
    "top_k": "is not supported: the agent's upstream samples without it",
    "mcp_servers": "is not supported: give the agent its MCP servers in the proxy's config",
    "container": "is not supported: the proxy runs no code execution containers",
}


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    model: str
    messages: list[ChatMessage]
    options: RunOptions
    stream: bool
    tools: ClientTools | None = None
    response_format: ResponseFormat | None = None


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model", "must be the name of an agent or one of its aliases")
    return model


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise InvalidRequest(key, "must be a boolean")
    return value


def _number(body: dict[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InvalidRequest(key, "must be a number from 0 to 1")
    return float(value)


def _max_tokens(body: dict[str, Any]) -> int:
    value = body.get("max_tokens")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest("max_tokens", "must be a positive integer")
    return value


def _stop(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise InvalidRequest("stop_sequences", "must be an array of strings")
    return tuple(value) or None


def _object(value: object, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(param, "must be an object")
    return value


def _tool(value: object, param: str) -> ClientTool:
    tool = _object(value, param)
    if tool.get("type", "custom") != "custom":
        raise InvalidRequest(
            f"{param}.type", "only client tools (type `custom`) are supported, no server tools"
        )
    name = tool.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidRequest(f"{param}.name", "a tool name is 1 to 64 of a-z, A-Z, 0-9, _ and -")
    description = tool.get("description")
    if description is not None and not isinstance(description, str):
        raise InvalidRequest(f"{param}.description", "must be a string")
    schema = _object(tool.get("input_schema"), f"{param}.input_schema")
    return ClientTool(
        name=name, parameters=schema, description=description, strict=tool.get("strict") is True
    )


def _tools(body: dict[str, Any]) -> tuple[ClientTools | None, bool | None]:
    """`tools` and `tool_choice`, and whether the model may call several tools at once."""
    raw, choice = body.get("tools"), body.get("tool_choice")
    choice = _object(choice, "tool_choice") if choice is not None else {"type": "auto"}
    kind = choice.get("type")
    parallel = False if choice.get("disable_parallel_tool_use") is True else None
    if raw is None or raw == []:
        if kind not in ("auto", "none"):
            raise InvalidRequest("tool_choice", "needs `tools`")
        return None, None
    if not isinstance(raw, list):
        raise InvalidRequest("tools", "must be an array of tools")
    tools: list[ClientTool] = []
    for i, value in enumerate(raw):
        tool = _tool(value, f"tools[{i}]")
        if any(t.name == tool.name for t in tools):
            raise InvalidRequest(f"tools[{i}].name", f"two tools are named {tool.name!r}")
        tools.append(tool)
    if kind in ("auto", "none"):
        return ClientTools(tuple(tools), kind), parallel
    if kind == "any":
        return ClientTools(tuple(tools), "required"), parallel
    name = choice.get("name")
    if kind != "tool" or not any(t.name == name for t in tools):
        raise InvalidRequest("tool_choice", "is auto, any, none, or {type: tool, name} of one of `tools`")
    return ClientTools(tuple(tools), "required", forced=name), parallel


def _response_format(body: dict[str, Any]) -> ResponseFormat | None:
    """A JSON Schema answer: `output_config.format` (or the older beta's `output_format`)."""
    config = body.get("output_config")
    param, fmt = "output_format", body.get("output_format")
    if config is not None and _object(config, "output_config").get("format") is not None:
        param, fmt = "output_config.format", config["format"]
    if fmt is None:
        return None
    fmt = _object(fmt, param)
    if fmt.get("type") != "json_schema":
        raise InvalidRequest(f"{param}.type", "must be `json_schema`")
    return ResponseFormat(schema=_object(fmt.get("schema"), f"{param}.schema"), name="output")


def parse_messages_request(body: dict[str, Any]) -> MessagesRequest:
    """The Messages body -> what the engine needs (see the module's docstring for each field)."""
    for key, why in REFUSED.items():
        if body.get(key) is not None:
            raise InvalidRequest(key, why)
    model = _model(body)
    messages = chat_messages(body.get("messages"), system_text(body.get("system")))
    tools, parallel = _tools(body)
    options = RunOptions(
        max_tokens=_max_tokens(body),
        temperature=_number(body, "temperature"),
        top_p=_number(body, "top_p"),
        stop=_stop(body.get("stop_sequences")),
        parallel_tool_calls=parallel,
    )
    return MessagesRequest(model, messages, options, _flag(body, "stream"), tools, _response_format(body))


def parse_count_request(body: dict[str, Any]) -> str:
    """A `count_tokens` body (a Messages body without `max_tokens`), checked as `create` checks it;
    its `model`."""
    for key, why in REFUSED.items():
        if body.get(key) is not None:
            raise InvalidRequest(key, why)
    chat_messages(body.get("messages"), system_text(body.get("system")))
    _tools(body)
    return _model(body)
