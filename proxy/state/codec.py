"""Events and stream inputs as bytes, for a state backend that keeps them outside the process."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import orjson
from pydantic import TypeAdapter
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter

from proxy.engine.inputs import ClientTool, ClientTools, PromptPart, ResponseFormat, RunOptions, StreamInput
from proxy.events import (
    Delta,
    End,
    Error,
    Event,
    FunctionCall,
    Output,
    Retry,
    Start,
    ToolCall,
    ToolResult,
    Usage,
)

_PUBLIC: dict[str, type[Event]] = {
    cls.type: cls for cls in (Start, Delta, Output, ToolCall, ToolResult, Retry, Error, End)
}


def _default(value: Any) -> Any:
    return str(value)


def encode_event(event: Event) -> bytes:
    return orjson.dumps(event.to_dict(), default=_default)


def decode_event(raw: bytes | str) -> Event:
    data = orjson.loads(raw)
    cls = _PUBLIC[data.pop("type")]
    if cls is End:
        data["usage"] = Usage(**data["usage"])
        data.setdefault("text", None)
        # Written by a version before `end.model`: during a rolling upgrade a replica of this one
        # may resume a stream that an older one ended.
        data.setdefault("model", "")
        if "tool_calls" in data:
            data["tool_calls"] = [FunctionCall(**call) for call in data["tool_calls"]]
    return cls(**data)


def encode_messages(messages: list[ModelMessage]) -> bytes:
    return ModelMessagesTypeAdapter.dump_json(messages)


def decode_messages(raw: bytes | str) -> list[ModelMessage]:
    return ModelMessagesTypeAdapter.validate_json(raw)


_PROMPT: TypeAdapter[str | list[PromptPart] | None] = TypeAdapter(str | list[PromptPart] | None)
"""A prompt's parts: text stays a string, images become pydantic-ai's JSON of them."""


def encode_input(request: StreamInput) -> dict[str, Any]:
    return {
        "prompt": _PROMPT.dump_python(request.prompt, mode="json"),
        "history": orjson.loads(encode_messages(request.history)),
        "conversation_id": request.conversation_id,
        "new_conversation": request.new_conversation,
        "instructions": request.instructions,
        "options": asdict(request.options) if request.options else None,
        "mid_stream": request.mid_stream,
        "tools": asdict(request.tools) if request.tools else None,
        "response_format": asdict(request.response_format) if request.response_format else None,
    }


def _decode_tools(raw: dict[str, Any] | None) -> ClientTools | None:
    if raw is None:
        return None
    tools = tuple(ClientTool(**tool) for tool in raw["tools"])
    return ClientTools(tools, raw["choice"], raw["forced"])


def decode_input(data: dict[str, Any]) -> StreamInput:
    raw = data["options"]
    options = None
    if raw is not None:
        stop = raw.get("stop")
        options = RunOptions(
            max_tokens=raw.get("max_tokens"),
            temperature=raw.get("temperature"),
            top_p=raw.get("top_p"),
            stop=tuple(stop) if stop else None,
            user=raw.get("user"),
            parallel_tool_calls=raw.get("parallel_tool_calls"),
        )
    fmt = data.get("response_format")
    return StreamInput(
        prompt=_PROMPT.validate_python(data["prompt"]),
        history=decode_messages(orjson.dumps(data["history"])),
        conversation_id=data["conversation_id"],
        new_conversation=data["new_conversation"],
        instructions=data["instructions"],
        options=options,
        mid_stream=data["mid_stream"],
        tools=_decode_tools(data.get("tools")),
        response_format=ResponseFormat(**fmt) if fmt else None,
    )
