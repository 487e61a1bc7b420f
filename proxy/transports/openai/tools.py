"""The request fields with which an OpenAI client shapes the answer: `tools`, `tool_choice`,
`parallel_tool_calls`, `response_format`, and the assistant's `tool_calls` in its history. Each one
the proxy cannot honour is a 400 naming it (`InvalidParam`), never a silent ignore."""

from __future__ import annotations

import re
from typing import Any

from proxy.engine.inputs import ClientTool, ClientTools, ResponseFormat
from proxy.events import FunctionCall
from proxy.transports.openai.errors import InvalidParam

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""What OpenAI accepts as a function's name."""
LEGACY = ("functions", "function_call")
"""The fields `tools` and `tool_choice` replaced; taking them silently would drop the functions."""


def _object(value: object, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidParam(param, f"`{param}` must be an object")
    return value


def _string(value: object, param: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidParam(param, f"`{param}` must be a non-empty string")
    return value


def flag(value: object, param: str) -> bool:
    """A boolean field; absent is false."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidParam(param, f"`{param}` must be a boolean")
    return value


def _tool(value: object, param: str) -> ClientTool:
    tool = _object(value, param)
    if tool.get("type") != "function":
        raise InvalidParam(f"{param}.type", "only tools of type 'function' are supported")
    return function_tool(_object(tool.get("function"), f"{param}.function"), f"{param}.function")


def function_tool(function: dict[str, Any], param: str) -> ClientTool:
    """A function's `name`, `description`, `parameters` and `strict`, found at `param`."""
    name = function.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidParam(f"{param}.name", "a function name is 1 to 64 of a-z, A-Z, 0-9, _ and -")
    description = function.get("description")
    if description is not None and not isinstance(description, str):
        raise InvalidParam(f"{param}.description", "`description` must be a string")
    parameters = function.get("parameters")
    if parameters is None:  # OpenAI's Responses API sends `null` for a function without arguments
        parameters = {"type": "object", "properties": {}}
    return ClientTool(
        name=name,
        parameters=_object(parameters, f"{param}.parameters"),
        description=description,
        strict=flag(function.get("strict"), f"{param}.strict"),
    )


def client_tools(body: dict[str, Any]) -> ClientTools | None:
    """`tools` and `tool_choice`; None when no tools are offered."""
    for legacy in LEGACY:
        if body.get(legacy) is not None:
            raise InvalidParam(legacy, f"`{legacy}` is not supported; use `tools` and `tool_choice`")
    raw, choice = body.get("tools"), body.get("tool_choice")
    if raw is None or raw == []:
        if choice is not None and choice not in ("none", "auto"):
            raise InvalidParam("tool_choice", "`tool_choice` needs `tools`")
        return None
    if not isinstance(raw, list):
        raise InvalidParam("tools", "`tools` must be an array of function tools")
    tools: list[ClientTool] = []
    for i, value in enumerate(raw):
        tool = _tool(value, f"tools[{i}]")
        if any(t.name == tool.name for t in tools):
            raise InvalidParam(f"tools[{i}].function.name", f"two tools are named {tool.name!r}")
        tools.append(tool)
    named = choice.get("function") if isinstance(choice, dict) and choice.get("type") == "function" else None
    name = named.get("name") if isinstance(named, dict) else None
    return with_choice(tools, choice, name, "{type: function, function: {name}}")


def with_choice(tools: list[ClientTool], choice: Any, name: object, shape: str) -> ClientTools:
    """`tools` with `tool_choice`: none, auto, required, or the one named `name` (a choice of `shape`)."""
    if choice is None or choice in ("none", "auto", "required"):
        return ClientTools(tuple(tools), choice or "auto")
    if not any(t.name == name for t in tools):
        raise InvalidParam(
            "tool_choice", f"`tool_choice` is none, auto, required, or {shape} of one of `tools`"
        )
    return ClientTools(tuple(tools), "required", forced=name if isinstance(name, str) else None)


def response_format(value: object) -> ResponseFormat | None:
    """`response_format`: None for text."""
    if value is None:
        return None
    fmt = _object(value, "response_format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat()
    if kind != "json_schema":
        raise InvalidParam(
            "response_format.type", "`response_format.type` is text, json_object or json_schema"
        )
    return json_schema(
        _object(fmt.get("json_schema"), "response_format.json_schema"), "response_format.json_schema"
    )


def json_schema(spec: dict[str, Any], param: str) -> ResponseFormat:
    """A JSON Schema answer format's `name`, `schema`, `description` and `strict`, found at `param`."""
    name = _string(spec.get("name"), f"{param}.name")
    if not _NAME.fullmatch(name):
        raise InvalidParam(f"{param}.name", "a name is 1 to 64 of a-z, A-Z, 0-9, _ and -")
    description = spec.get("description")
    if description is not None and not isinstance(description, str):
        raise InvalidParam(f"{param}.description", "`description` must be a string")
    return ResponseFormat(
        schema=_object(spec.get("schema"), f"{param}.schema"),
        name=name,
        description=description,
        strict=flag(spec.get("strict"), f"{param}.strict"),
    )


def parallel_tool_calls(value: object) -> bool | None:
    return None if value is None else flag(value, "parallel_tool_calls")


def tool_calls(value: object, param: str) -> tuple[FunctionCall, ...]:
    """An assistant message's `tool_calls`."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidParam(param, "`tool_calls` must be an array")
    calls: list[FunctionCall] = []
    for i, raw in enumerate(value):
        call = _object(raw, f"{param}[{i}]")
        function = _object(call.get("function"), f"{param}[{i}].function")
        calls.append(
            FunctionCall(
                id=_string(call.get("id"), f"{param}[{i}].id"),
                name=_string(function.get("name"), f"{param}[{i}].function.name"),
                arguments=_arguments(function.get("arguments"), f"{param}[{i}].function.arguments"),
            )
        )
    return tuple(calls)


def _arguments(value: object, param: str) -> str:
    if not isinstance(value, str):
        raise InvalidParam(param, "`arguments` must be a string of JSON")
    return value
