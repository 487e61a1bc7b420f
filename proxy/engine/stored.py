"""A stored conversation's last answer, as an API door shows it again (`GET /v1/responses/{id}`),
in the engine's own types rather than pydantic-ai's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart

from proxy.events import FunctionCall, Usage


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    text: str
    tool_calls: list[FunctionCall]
    """Calls of the client's tools it must answer: those of a response that ends the conversation."""
    model: str | None
    """The upstream's name of the model that answered."""
    usage: Usage
    """What the last model request of the answer reported."""
    created_at: float


def last_answer(messages: Sequence[ModelMessage]) -> StoredAnswer | None:
    """The last model response of `messages`; None when there is none."""
    for i in range(len(messages) - 1, -1, -1):
        response = messages[i]
        if not isinstance(response, ModelResponse):
            continue
        last = i == len(messages) - 1
        calls = [
            FunctionCall(part.tool_call_id, part.tool_name, part.args_as_json_str())
            for part in response.parts
            if last and isinstance(part, ToolCallPart)
        ]
        usage = response.usage
        return StoredAnswer(
            text="".join(part.content for part in response.parts if isinstance(part, TextPart)),
            tool_calls=calls,
            model=response.model_name,
            usage=Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, requests=1),
            created_at=response.timestamp.timestamp(),
        )
    return None
