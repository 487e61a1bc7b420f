"""Run an agent on a model and record everything observable, so that two models' runs can be compared.

An `Observation` holds the event sequence (JSON dumps of pydantic-ai's events), `all_messages()` (as
`ModelMessagesTypeAdapter` dumps them), the usage, the output, and the exception (class, categories,
attributes and how the engine classifies it), with the values that differ between any two runs
(timestamps, run/conversation ids, `provider_response_id`) dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter
from pydantic_ai import Agent, AgentRunResultEvent, AgentStreamEvent
from pydantic_ai.exceptions import (
    AgentRunError,
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelContextWindowExceededError,
    ModelHTTPError,
    ModelNotFoundError,
    ModelOverloadedError,
    ModelRateLimitError,
    ModelRequestRejectedError,
    ModelServerError,
    ModelTimeoutError,
    ModelUnavailableError,
    UnexpectedModelBehavior,
)
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter
from pydantic_ai.models import Model
from pydantic_ai.settings import ModelSettings

from proxy.engine.failures import _caused_by_json_error, classify

VOLATILE = frozenset({"timestamp", "run_id", "conversation_id", "provider_response_id"})
CATEGORIES: tuple[type[BaseException], ...] = (
    ModelAPIError,
    ModelHTTPError,
    ModelRateLimitError,
    ModelServerError,
    ModelUnavailableError,
    ModelOverloadedError,
    ModelRequestRejectedError,
    ModelAuthenticationError,
    ModelNotFoundError,
    ModelContextWindowExceededError,
    ModelConnectionError,
    ModelTimeoutError,
    UnexpectedModelBehavior,
)
_EVENTS: TypeAdapter[Any] = TypeAdapter(AgentStreamEvent)


def scrub(value: Any) -> Any:
    """`value` without the keys in VOLATILE, at any depth."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def dump_messages(messages: Sequence[ModelMessage]) -> list[Any]:
    dumped: list[Any] = scrub(ModelMessagesTypeAdapter.dump_python(list(messages), mode="json"))
    return dumped


def dump_event(event: Any) -> Any:
    if isinstance(event, AgentRunResultEvent):
        return {"event_kind": "agent_run_result", "output": _jsonable(event.result.output)}
    return scrub(_EVENTS.dump_python(event, mode="json"))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value


def describe_error(exc: BaseException) -> dict[str, Any]:
    """What the engine and a reader can tell from an exception, without its message."""
    failure = classify(exc)
    return {
        "class": type(exc).__name__,
        "categories": sorted(c.__name__ for c in CATEGORIES if isinstance(exc, c)),
        "status_code": getattr(exc, "status_code", None),
        "in_stream": getattr(exc, "in_stream", None),
        "retry_after": getattr(exc, "retry_after", None),
        "phase": getattr(exc, "phase", None),
        "provider_error_code": getattr(exc, "provider_error_code", None),
        "provider_error_type": getattr(exc, "provider_error_type", None),
        "body": getattr(exc, "body", None),
        "json_cause": _caused_by_json_error(exc),
        "engine": dataclasses.replace(failure, message=""),
    }


@dataclass
class Observation:
    events: list[Any] = field(default_factory=list)
    messages: list[Any] | None = None
    usage: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    requests: int = 0
    raw_messages: list[ModelMessage] = field(default_factory=list)
    exception: BaseException | None = None

    def comparable(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "messages": self.messages,
            "usage": self.usage,
            "output": self.output,
            "error": self.error,
            "requests": self.requests,
        }

    @property
    def text(self) -> str:
        parts: list[str] = []
        for ev in self.events:
            if ev.get("event_kind") == "part_start" and ev["part"]["part_kind"] == "text":
                parts.append(ev["part"]["content"])
            elif ev.get("event_kind") == "part_delta" and ev["delta"]["part_delta_kind"] == "text":
                parts.append(ev["delta"]["content_delta"])
        return "".join(parts)

    def kinds(self) -> list[str]:
        return [ev["event_kind"] for ev in self.events]


AgentSetup = Callable[[Agent[None, Any]], None]


async def observe_stream(
    model: Model,
    prompt: str = "hi there",
    *,
    output_type: Any = str,
    setup: AgentSetup | None = None,
    history: list[ModelMessage] | None = None,
    instructions: str | None = None,
    settings: ModelSettings | None = None,
    requests: Callable[[], int] = lambda: 0,
) -> Observation:
    """`Agent(model).run_stream_events(prompt, ...)`, recorded."""
    agent: Agent[None, Any] = Agent(model, output_type=output_type, instructions=instructions)
    if setup is not None:
        setup(agent)
    obs = Observation()
    try:
        async with agent.run_stream_events(prompt, message_history=history, model_settings=settings) as run:
            async for event in run:
                obs.events.append(dump_event(event))
                if isinstance(event, AgentRunResultEvent):
                    obs.output = _jsonable(event.result.output)
                    obs.raw_messages = event.result.all_messages()
                    obs.messages = dump_messages(obs.raw_messages)
                    obs.usage = event.result.usage
    except AgentRunError as exc:
        obs.exception = exc
        obs.error = describe_error(exc)
    obs.requests = requests()
    return obs


async def observe_run(
    model: Model,
    prompt: str = "hi there",
    *,
    output_type: Any = str,
    setup: AgentSetup | None = None,
    history: list[ModelMessage] | None = None,
    settings: ModelSettings | None = None,
    requests: Callable[[], int] = lambda: 0,
) -> Observation:
    """`Agent(model).run(prompt, ...)` (non-streamed requests), recorded."""
    agent: Agent[None, Any] = Agent(model, output_type=output_type)
    if setup is not None:
        setup(agent)
    obs = Observation()
    try:
        result = await agent.run(prompt, message_history=history, model_settings=settings)
    except AgentRunError as exc:
        obs.exception = exc
        obs.error = describe_error(exc)
    else:
        obs.output = _jsonable(result.output)
        obs.raw_messages = result.all_messages()
        obs.messages = dump_messages(obs.raw_messages)
        obs.usage = result.usage
    obs.requests = requests()
    return obs
