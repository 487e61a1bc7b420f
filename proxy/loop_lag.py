"""How late the event loop runs: the proxy's own overload, measured.

A timer due every `interval_s` notes how late it fired. Under a burst the loop runs each callback
seconds late, and a deadline that ran out meanwhile says nothing about the upstream: the engine and
the upstream client subtract the lag from the time they waited (`mark()` / `since()`) before
blaming the upstream, and the start gate paces new attempts while the loop lags.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

LagListener = Callable[[float], None]
"""Called on each tick with the lag it measured, in seconds."""


class LoopLag:
    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.current_s = 0.0
        """The lag of the latest tick."""
        self._total = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._listeners: list[LagListener] = []

    def start(self) -> None:
        """Start ticking on the running loop (again after `stop`)."""
        if self._timer is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._due = self._loop.time() + self.interval_s
        self._timer = self._loop.call_at(self._due, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def listen(self, listener: LagListener) -> None:
        self._listeners.append(listener)

    def mark(self) -> float:
        """The loop's lag so far, including the tick that is overdue now; compare with `since`."""
        if self._loop is None or self._timer is None:
            return self._total
        return self._total + max(0.0, self._loop.time() - self._due)

    def since(self, mark: float) -> float:
        """Seconds the loop lagged since `mark` was taken."""
        return max(0.0, self.mark() - mark)

    def record(self, lag_s: float) -> None:
        """One tick's lag (the timer's own, or a test's)."""
        self.current_s = lag_s
        self._total += lag_s
        for listener in self._listeners:
            listener(lag_s)

    def _tick(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        lag = max(0.0, now - self._due)
        self._due = now + self.interval_s
        self._timer = self._loop.call_at(self._due, self._tick)
        self.record(lag)
