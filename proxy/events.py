"""The stream event types of protocol.md 3.1, plus the engine's internal events.

Public events go to clients; every transport encodes them from `Event.to_dict()`. Internal events
(`internal = True`) never reach a wire: they exist so that the one observer of the event stream
(metrics, traces, logs) sees what happened upstream (attempts, fallbacks, circuit changes) without
the engine calling observability code itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal

FinishReason = Literal["stop", "length", "tool_calls", "error", "timeout", "cancelled", "shutdown"]
AttemptOutcome = Literal["success", "error", "cancelled"]


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
"""Field names per event class: `dataclasses.fields` is too slow to call per event."""


@dataclass(slots=True, kw_only=True)
class Event:
    """Base of every event. `seq` is assigned by the engine; heartbeats have none."""

    type: ClassVar[str]
    internal: ClassVar[bool] = False
    stream_id: str
    seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        names = _FIELD_NAMES.get(type(self))
        if names is None:
            names = _FIELD_NAMES[type(self)] = tuple(f.name for f in fields(self))
        out: dict[str, Any] = {"type": self.type}
        for name in names:
            out[name] = getattr(self, name)
        if self.seq is None:
            del out["seq"]
        return out


@dataclass(slots=True, kw_only=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.requests += other.requests


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """A call of one of the client's tools, as OpenAI's wire carries it (`arguments` is JSON text)."""

    id: str
    name: str
    arguments: str


@dataclass(slots=True, kw_only=True)
class Start(Event):
    type: ClassVar[str] = "start"
    agent: str
    model: str
    conversation_id: str | None
    created_at: float


@dataclass(slots=True, kw_only=True)
class Delta(Event):
    type: ClassVar[str] = "delta"
    text: str

    def to_dict(self) -> dict[str, Any]:
        # One per chunk: spelled out, without the generic loop over the fields.
        if self.seq is None:
            return {"type": "delta", "stream_id": self.stream_id, "text": self.text}
        return {"type": "delta", "stream_id": self.stream_id, "seq": self.seq, "text": self.text}


@dataclass(slots=True, kw_only=True)
class Output(Event):
    type: ClassVar[str] = "output"
    data: Any
    partial: bool


@dataclass(slots=True, kw_only=True)
class ToolCall(Event):
    type: ClassVar[str] = "tool_call"
    tool_call_id: str
    name: str
    args: Any


@dataclass(slots=True, kw_only=True)
class ToolResult(Event):
    type: ClassVar[str] = "tool_result"
    tool_call_id: str
    name: str
    content: Any
    outcome: str


@dataclass(slots=True, kw_only=True)
class Heartbeat(Event):
    type: ClassVar[str] = "heartbeat"
    ts: float = field(default_factory=time.time)


@dataclass(slots=True, kw_only=True)
class Retry(Event):
    type: ClassVar[str] = "retry"
    attempt: int
    max_attempts: int
    reason: str
    delay_s: float
    discard: bool


@dataclass(slots=True, kw_only=True)
class Error(Event):
    type: ClassVar[str] = "error"
    code: str
    message: str
    retryable: bool


@dataclass(slots=True, kw_only=True)
class End(Event):
    type: ClassVar[str] = "end"
    finish_reason: FinishReason
    text: str | None
    output: Any = None
    usage: Usage = field(default_factory=Usage)
    attempts: int
    model: str
    """The model of the last attempt, the one that answered when the stream succeeded (a fallback's
    name when a fallback answered); its config string, as in `start.model`."""
    ttft_s: float | None
    duration_s: float
    conversation_id: str | None
    tool_calls: list[FunctionCall] | None = None
    """With `finish_reason: "tool_calls"`: the calls of the client's tools it must answer."""

    def to_dict(self) -> dict[str, Any]:
        out = Event.to_dict(self)
        if self.tool_calls is None:
            del out["tool_calls"]
        out["usage"] = {
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "requests": self.usage.requests,
        }
        if self.output is None:
            del out["output"]
        else:
            del out["text"]
        return out


@dataclass(slots=True, kw_only=True)
class AttemptStarted(Event):
    """Internal: an upstream attempt begins (attempt numbers count from 1 across all models)."""

    type: ClassVar[str] = "attempt_started"
    internal: ClassVar[bool] = True
    agent: str
    model: str
    attempt: int


@dataclass(slots=True, kw_only=True)
class AttemptFinished(Event):
    """Internal: one upstream attempt ended (`error_type` names the failure class, or is None)."""

    type: ClassVar[str] = "attempt_finished"
    internal: ClassVar[bool] = True
    agent: str
    model: str
    outcome: AttemptOutcome
    error_type: str | None
    reason: str | None
    duration_s: float


@dataclass(slots=True, kw_only=True)
class Fallback(Event):
    """Internal: the engine moved from `from_model` to `model`."""

    type: ClassVar[str] = "fallback"
    internal: ClassVar[bool] = True
    agent: str
    from_model: str
    model: str
    reason: str


@dataclass(slots=True, kw_only=True)
class CircuitChanged(Event):
    """Internal: a model's circuit breaker changed state."""

    type: ClassVar[str] = "circuit_changed"
    internal: ClassVar[bool] = True
    model: str
    state: Literal["closed", "open", "half_open"]


CONTENT_EVENTS: tuple[type[Event], ...] = (Delta, Output)
"""Events that carry content: the first one written defines time to first token."""
