"""The one hook that sees every event of every stream: metrics, traces and logs plug in here.

Transports never call observability code directly. Their shared writer (`transports/pump.py`) calls
an `Observer` at fixed points: when a stream is accepted, after each event was written to the client
(internal events when the engine produced them), and when the stream is over. Each observer method is
synchronous and must be cheap: it runs on the streaming hot path.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from proxy.events import Delta, End, Event

Transport = Literal["sse", "ws", "openai", "run", "vercel_ai", "ag_ui", "responses", "anthropic"]
ANONYMOUS_KEY = "anonymous"
"""The `key` of streams without a key (`[auth] mode = "none"`)."""
StreamOutcome = Literal[
    "stop", "length", "tool_calls", "error", "timeout", "cancelled", "shutdown", "client_disconnect"
]


@dataclass(slots=True)
class StreamContext:
    """What an observer knows about one stream, shared by all its callbacks."""

    stream_id: str
    agent: str
    transport: Transport
    key: str = ANONYMOUS_KEY
    """The configured name of the caller's key (never the key itself)."""
    arrived_at: float = field(default_factory=time.monotonic)
    """`time.monotonic()` when the request arrived; TTFT counts from here."""
    trace_headers: Mapping[str, str] = field(default_factory=dict)
    """Incoming W3C trace headers (`traceparent`, `tracestate`) to continue."""
    model: str | None = None
    """The model currently serving the stream (updated from `start` and attempt events)."""
    first_content_at: float | None = None
    last_content_at: float | None = None
    trace_id: str | None = None
    """The stream's trace id (32 hex digits) when it is sampled; set by the tracing observer when
    the stream starts, so every later callback of any observer can read it."""
    state: dict[str, Any] = field(default_factory=dict)
    """Scratch space for observers (span handles, context tokens), keyed by observer."""


class Observer(Protocol):
    def stream_started(self, ctx: StreamContext) -> None: ...

    def event_sent(self, ctx: StreamContext, event: Event) -> None:
        """After `event` was written to the client (internal events: when produced)."""

    def stream_finished(self, ctx: StreamContext, outcome: StreamOutcome, end: End | None) -> None:
        """Exactly once per started stream; `end` is None when the client went away first."""


class Observers:
    """Fans the callbacks out to several observers, in order. An observer with `sees_deltas = False`
    is not called for `delta` events, one per chunk, which it ignores."""

    def __init__(self, observers: Iterable[Observer] = ()) -> None:
        self._observers = tuple(observers)
        self._delta_observers = tuple(o for o in self._observers if getattr(o, "sees_deltas", True))

    def stream_started(self, ctx: StreamContext) -> None:
        for o in self._observers:
            o.stream_started(ctx)

    def event_sent(self, ctx: StreamContext, event: Event) -> None:
        for o in self._delta_observers if type(event) is Delta else self._observers:
            o.event_sent(ctx, event)

    def stream_finished(self, ctx: StreamContext, outcome: StreamOutcome, end: End | None) -> None:
        for o in self._observers:
            o.stream_finished(ctx, outcome, end)
