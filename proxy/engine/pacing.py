"""Waiting on an upstream attempt under its deadlines, cancellably.

Each wait has one deadline: the first-token deadline (from the attempt's start to its first event),
the idle gap between events, or the stream's total deadline, whichever comes first. One timer per
attempt watches it and re-arms itself lazily, so a wait costs a clock read and a few assignments;
an `asyncio.timeout` per wait cost a timer handle and its cancellation per event, about a third of
the engine's CPU per chunk (docs/performance.md). When the deadline passes, or `cancel()` is called,
the waiting task is cancelled, which cancels the upstream read; the caller then leaves the run's
context, which closes the request. Call `close()` when the attempt ends. With a `LoopLag`, the
first-token and idle deadlines move by the time the proxy's own event loop lagged (the total deadline
is the client's and does not).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from typing import Literal, NoReturn, TypeVar

from proxy.config import TimeoutSettings
from proxy.engine.failures import AttemptTimeout
from proxy.loop_lag import LoopLag

T = TypeVar("T")

_Kind = Literal["first_token", "idle", "total"]


class AttemptCancelled(Exception):
    """`Pacer.cancel()` was called: the stream is being ended on purpose."""


class Pacer:
    def __init__(self, timeouts: TimeoutSettings, stream_deadline: float, lag: LoopLag | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._timeouts = timeouts
        self._stream_deadline = stream_deadline
        self._first_deadline = self._loop.time() + timeouts.first_token_s
        self._got_first = False
        self._deadline = 0.0
        self._kind: _Kind = "first_token"
        self._lag = lag
        self._lag_mark = lag.mark() if lag is not None else 0.0
        self._waiter: asyncio.Task[object] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._idle_s = timeouts.idle_s
        self._interrupting = False
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        self._interrupt()

    def close(self) -> None:
        """Stop the timer (the attempt is over)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _interrupt(self) -> None:
        waiter = self._waiter
        if waiter is not None and not self._interrupting:
            self._interrupting = True
            waiter.cancel()

    def _on_timer(self) -> None:
        self._timer = None
        if self._waiter is None:
            return  # between waits: the next wait re-arms it
        if self._loop.time() >= self._deadline and self._kind != "total" and self._lag is not None:
            # Time our own loop lagged is not the upstream's: the deadline moves by it.
            lagged = self._lag.since(self._lag_mark)
            self._lag_mark += lagged
            self._deadline += lagged
            if self._kind == "first_token":
                self._first_deadline += lagged
            if self._deadline >= self._stream_deadline:
                self._deadline, self._kind = self._stream_deadline, "total"
        if self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, self._on_timer)
            self._timer_at = self._deadline
        else:
            self._interrupt()

    async def wait(self, awaitable: Awaitable[T]) -> T:
        """`await awaitable` under the deadline in force; AttemptTimeout / AttemptCancelled instead."""
        waiter, cancelling = self._begin()
        try:
            return await awaitable
        except asyncio.CancelledError as exc:
            self._interrupted(waiter, cancelling, exc)
        finally:
            self._end(waiter)

    def _begin(self) -> tuple[asyncio.Task[object], int]:
        """Start a wait: its deadline, the timer if it would fire too late, and the waiting task
        with its count of cancellation requests."""
        if self.cancelled:
            raise AttemptCancelled
        kind: _Kind
        if self._got_first:
            kind, deadline = "idle", self._loop.time() + self._idle_s
            if self._lag is not None:
                self._lag_mark = self._lag.mark()
        else:
            kind, deadline = "first_token", self._first_deadline
        if deadline >= self._stream_deadline:
            kind, deadline = "total", self._stream_deadline
        self._deadline, self._kind = deadline, kind
        timer = self._timer
        if timer is None or self._timer_at > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline
        self._waiter = waiter = asyncio.current_task()
        assert waiter is not None
        return waiter, waiter.cancelling()

    def _interrupted(
        self, waiter: asyncio.Task[object], cancelling: int, cancellation: asyncio.CancelledError
    ) -> NoReturn:
        """Raise what a cancelled wait raises: the cancellation itself unless this pacer caused it
        (and nothing else cancelled the task too, which wins), else AttemptCancelled / AttemptTimeout."""
        if not self._interrupting:
            raise cancellation
        self._interrupting = False
        if waiter.uncancel() > cancelling:
            raise cancellation
        if self.cancelled:
            raise AttemptCancelled from None
        raise AttemptTimeout(self._kind, self._limit(self._kind)) from None

    def _end(self, waiter: asyncio.Task[object]) -> None:
        self._waiter = None
        if self._interrupting:  # interrupted, but the awaitable ended another way
            self._interrupting = False
            waiter.uncancel()

    def _limit(self, kind: _Kind) -> float:
        t = self._timeouts
        return {"first_token": t.first_token_s, "idle": t.idle_s, "total": t.total_s}[kind]

    async def paced(self, source: AsyncIterator[T]) -> AsyncGenerator[T, None]:
        """The items of `source`, each awaited as `wait` awaits (inlined: this runs once per chunk);
        closing this closes `source`."""
        try:
            while True:
                waiter, cancelling = self._begin()
                try:
                    item = await anext(source)
                except StopAsyncIteration:
                    return
                except asyncio.CancelledError as exc:
                    self._interrupted(waiter, cancelling, exc)
                finally:
                    self._end(waiter)
                self._got_first = True
                yield item
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()
