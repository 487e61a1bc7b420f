"""Events and stream inputs as bytes, for a state backend that keeps them outside the process."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import orjson
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter

from proxy.engine.inputs import RunOptions, StreamInput
from proxy.events import Delta, End, Error, Event, Output, Retry, Start, ToolCall, ToolResult, Usage

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
    return cls(**data)


def encode_messages(messages: list[ModelMessage]) -> bytes:
    return ModelMessagesTypeAdapter.dump_json(messages)


def decode_messages(raw: bytes | str) -> list[ModelMessage]:
    return ModelMessagesTypeAdapter.validate_json(raw)


def encode_input(request: StreamInput) -> dict[str, Any]:
    return {
        "prompt": request.prompt,
        "history": orjson.loads(encode_messages(request.history)),
        "conversation_id": request.conversation_id,
        "new_conversation": request.new_conversation,
        "instructions": request.instructions,
        "options": asdict(request.options) if request.options else None,
        "mid_stream": request.mid_stream,
    }


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
        )
    return StreamInput(
        prompt=data["prompt"],
        history=decode_messages(orjson.dumps(data["history"])),
        conversation_id=data["conversation_id"],
        new_conversation=data["new_conversation"],
        instructions=data["instructions"],
        options=options,
        mid_stream=data["mid_stream"],
    )
