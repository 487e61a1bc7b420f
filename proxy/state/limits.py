"""Rate-limit windows and concurrency counts behind one small async interface.

`LimitStore` is the seam between the limits of section 9 and where their counts live: in this
process (`MemoryLimitStore`), or in a shared store so that limits hold across processes and
replicas (section 10). Methods are async because a shared store answers over the network; each is
one atomic step, so no caller ever reads a count and writes it back.

Windows are fixed: `window` seconds aligned to multiples of `window` on the caller's clock (`now`),
which a shared store can keep as one counter with an expiry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer of `LimitStore.hit`: allowed or not, and the window's state after it."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: float
    """Seconds until the window refills."""


class LimitStore(Protocol):
    async def hit(self, key: str, window: float, cost: int, limit: int, now: float) -> Decision:
        """Spend `cost` from `key`'s current window unless it is spent already (used >= limit): then
        nothing changes and the decision is refused. `cost` 0 only asks; a cost may overshoot the
        limit (tokens are charged after they were used), which spends the window."""

    async def acquire_slot(self, key: str, limit: int) -> bool:
        """Take one of `limit` slots of `key`; False (and nothing taken) when all are in use."""

    async def release_slot(self, key: str) -> None:
        """Give back a slot `acquire_slot` took; call exactly once per slot."""


def window_state(window: float, now: float) -> tuple[int, float]:
    """The index of the window `now` falls in, and the seconds left in it."""
    index = math.floor(now / window)
    return index, (index + 1) * window - now


class MemoryLimitStore:
    """The counts of one process: a dict per kind, one entry per key (old windows are overwritten)."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int]] = {}
        self._slots: dict[str, int] = {}

    async def hit(self, key: str, window: float, cost: int, limit: int, now: float) -> Decision:
        index, reset = window_state(window, now)
        current, used = self._windows.get(key, (index, 0))
        if current != index:
            used = 0
        if used >= limit:
            return Decision(False, limit, 0, reset)
        used += cost
        self._windows[key] = (index, used)
        return Decision(True, limit, max(0, limit - used), reset)

    async def acquire_slot(self, key: str, limit: int) -> bool:
        used = self._slots.get(key, 0)
        if used >= limit:
            return False
        self._slots[key] = used + 1
        return True

    async def release_slot(self, key: str) -> None:
        used = self._slots.get(key, 0) - 1
        if used > 0:
            self._slots[key] = used
        else:
            self._slots.pop(key, None)

    def slots_in_use(self, key: str) -> int:
        return self._slots.get(key, 0)
