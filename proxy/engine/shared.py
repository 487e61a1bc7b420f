"""What the engine needs from the state shared by every process and replica, as a
protocol: conversations, stream event logs, and who runs each stream.

`proxy/state/` implements it in memory (one process; the default) and on Redis. Writes on a
stream's hot path (`begin`, `append`) are synchronous and buffered: the backend batches them, so
a stream never waits on a round trip per event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic_ai.messages import ModelMessage

from proxy.engine.inputs import StreamInput
from proxy.events import Event
from proxy.observability.observer import ANONYMOUS_KEY


class StateError(Exception):
    """The shared state could not be reached in time."""


class UnknownStreamError(Exception):
    """No log for that stream (never existed, expired, or it belongs to another key)."""


@dataclass(frozen=True, slots=True)
class OwnerLost:
    """Yielded by `follow`: the stream has not ended, and its owner's lease expired."""

    stream_id: str
    last_seq: int


@dataclass(frozen=True, slots=True)
class StoredStream:
    """What another process needs to run a stream again, and who may follow it."""

    stream_id: str
    agent: str
    request: StreamInput
    owner: str | None = None


class ConversationStore(Protocol):
    async def get(self, conversation_id: str, owner: str | None = ANONYMOUS_KEY) -> list[ModelMessage] | None:
        """The history, or None if unknown, expired, or another owner's. Raises StateError."""

    async def put(
        self, conversation_id: str, messages: Sequence[ModelMessage], owner: str | None = ANONYMOUS_KEY
    ) -> None: ...

    async def delete(self, conversation_id: str, owner: str | None = ANONYMOUS_KEY) -> bool:
        """Forget the owner's conversation; False if there was none. Raises StateError."""


class StreamLogs(Protocol):
    def begin(self, stored: StoredStream) -> None:
        """A stream starts here: keep its input and take its lease."""

    def append(self, stream_id: str, event: Event) -> None:
        """Log a public event; `end` closes the log, which is then kept for `resume_ttl_s`."""

    async def follow(
        self, stream_id: str, after: int, owner: str | None = None
    ) -> AsyncIterator[Event | OwnerLost]:
        """Every logged event with `seq > after`, then the live ones to `end`. Raises
        UnknownStreamError (no such log for this owner) or StateError."""

    async def take_over(self, stream_id: str) -> StoredStream | None:
        """Take the lease of a stream whose owner is lost; None if another process was first."""

    async def followed(self, stream_id: str) -> bool:
        """Whether a client follows the stream now (a disconnected stream's grace period)."""


class StateMetrics(Protocol):
    """What the shared state reports besides the event stream."""

    def resumed(self, outcome: str) -> None: ...

    def took_over(self) -> None: ...

    def state_error(self, op: str) -> None: ...

    def state_latency(self, op: str, seconds: float) -> None: ...


class SharedState(Protocol):
    @property
    def conversations(self) -> ConversationStore: ...

    @property
    def logs(self) -> StreamLogs: ...

    @property
    def healthy(self) -> bool:
        """False while the backend cannot be reached; new streams are then refused."""

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...
