"""What every stream of an engine shares: its state backends, breakers and the loop's lag."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from proxy.engine.breaker import Breakers
from proxy.engine.shared import ConversationStore, StreamLogs
from proxy.engine.start_gate import StartGate
from proxy.loop_lag import LoopLag

if TYPE_CHECKING:
    from proxy.engine.stream import Stream


@dataclass(frozen=True, slots=True)
class StreamServices:
    """What every stream of an engine shares."""

    conversations: ConversationStore
    breakers: Breakers
    logs: StreamLogs
    on_close: Callable[[Stream], None]
    grace_s: float = 0.0
    """How long a stream whose client left runs on, waiting for a client to resume it."""
    follow_check_s: float = 1.0
    """After the grace period, how often to check whether a client follows the stream again."""
    lag: LoopLag | None = None
    """The event loop's lag, which attempt deadlines do not count."""
    gate: StartGate | None = None
    """Paces attempt starts while the event loop lags."""
