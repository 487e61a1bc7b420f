"""Paced starts: while the event loop lags, upstream attempts start a few at a time, in arrival order.

A burst of thousands of streams would otherwise start thousands of attempts at once; each one's
connect and first-token deadlines then run out behind the others' work, and the proxy's own overload
looks like an upstream failure. Waiting streams have sent `start` already and get heartbeats from
their transport; how long they wait counts against their total deadline only.

Each tick of the `LoopLag` releases a batch: it doubles while the lag is under the threshold and
halves while it is over, down to `min_batch`: a loop that lags for want of CPU (busy with the streams
it runs, or starved by other processes) must still start new streams, only fewer at a time.
"""

from __future__ import annotations

import asyncio
from collections import deque

from proxy.loop_lag import LoopLag


class StartGate:
    def __init__(
        self, lag: LoopLag, threshold_s: float = 0.25, min_batch: int = 8, max_batch: int = 64
    ) -> None:
        self._lag = lag
        self._threshold = threshold_s
        self._min_batch = min_batch
        self._max_batch = max_batch
        self._batch = max_batch
        self._queue: deque[asyncio.Future[None]] = deque()
        self.waiting = 0
        """Streams in the queue now."""
        lag.listen(self._on_tick)

    def ticket(self) -> asyncio.Future[None] | None:
        """None: start now. Otherwise await the future (cancel it to leave the queue)."""
        if not self._queue and self._lag.current_s < self._threshold:
            return None
        ticket = asyncio.get_running_loop().create_future()
        self._queue.append(ticket)
        self.waiting += 1
        ticket.add_done_callback(self._left)
        return ticket

    def _left(self, ticket: asyncio.Future[None]) -> None:
        if ticket.cancelled():
            self.waiting -= 1

    def _on_tick(self, lag: float) -> None:
        if lag < self._threshold:
            self._batch = min(self._max_batch, self._batch * 2)
        else:
            self._batch = max(self._min_batch, self._batch // 2)
        released = 0
        while self._queue and released < self._batch:
            ticket = self._queue.popleft()
            if not ticket.done():
                ticket.set_result(None)
                self.waiting -= 1
                released += 1
