"""Events from a stream's own task to the client attached to it, in order.

Used when a stream must outlive its client (`[resume] grace_s > 0`): the stream then runs in a task
of its own, so that cancelling the client's task (a disconnect) cannot cancel the stream.
"""

from __future__ import annotations

import asyncio
from collections import deque

from proxy.events import Event


class Handoff:
    def __init__(self) -> None:
        self._items: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def put(self, event: Event) -> None:
        self._items.append(event)
        self._wake()

    def close(self) -> None:
        """No more events: `get` raises StopAsyncIteration once the queue is empty."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def get(self) -> Event:
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            if self._waiter is None:
                self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._items.popleft()
