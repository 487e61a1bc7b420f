"""Waiting on an upstream attempt under its deadlines, cancellably.

One `asyncio.timeout_at` per wait enforces the first-token deadline (from the attempt's start to
its first event), the idle gap between events, and the stream's total deadline; `cancel()` moves the
pending wait's deadline to now, which interrupts it at no cost per event. Cancelling a wait cancels
the upstream read; the caller then leaves the run's context, which closes the request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from proxy.config import TimeoutSettings
from proxy.engine.failures import AttemptTimeout

T = TypeVar("T")


class AttemptCancelled(Exception):
    """`Pacer.cancel()` was called: the stream is being ended on purpose."""


class Pacer:
    def __init__(self, timeouts: TimeoutSettings, stream_deadline: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._timeouts = timeouts
        self._stream_deadline = stream_deadline
        self._first_deadline = self._loop.time() + timeouts.first_token_s
        self._got_first = False
        self._waiting: asyncio.Timeout | None = None
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        if self._waiting is not None:
            self._waiting.reschedule(self._loop.time())

    async def wait(self, awaitable: Awaitable[T]) -> T:
        """`await awaitable` under the deadline in force; AttemptTimeout / AttemptCancelled instead."""
        if self.cancelled:
            raise AttemptCancelled
        timeouts = self._timeouts
        if self._got_first:
            kind, limit, deadline = "idle", timeouts.idle_s, self._loop.time() + timeouts.idle_s
        else:
            kind, limit, deadline = "first_token", timeouts.first_token_s, self._first_deadline
        if deadline >= self._stream_deadline:
            kind, limit, deadline = "total", timeouts.total_s, self._stream_deadline
        try:
            async with asyncio.timeout_at(deadline) as self._waiting:
                return await awaitable
        except TimeoutError as exc:
            if self.cancelled:
                raise AttemptCancelled from None
            raise AttemptTimeout(kind, limit) from exc
        finally:
            self._waiting = None

    async def paced(self, source: AsyncIterator[T]) -> AsyncIterator[T]:
        """The items of `source`, each awaited with `wait`."""
        while True:
            try:
                item = await self.wait(anext(source))
            except StopAsyncIteration:
                return
            self._got_first = True
            yield item
