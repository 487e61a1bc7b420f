"""The tenacity policy for one model's attempts: exponential backoff with jitter, Retry-After
honoured up to a cap, bounded by `max_attempts` and by the stream's total deadline.

The stream runs its first attempt without it; from the first failure on it iterates
`AsyncRetrying` through `Retries` (tenacity's first iteration stands for that attempt) and sets each
attempt's outcome itself (so that the attempt's events reach the client as they arrive, and
cancellation is never captured as an outcome); tenacity decides whether another attempt follows
(`retry`, `stop`), when (`wait`), and tells the stream before it sleeps (`before_sleep`), so that the
`retry` event goes out before the backoff.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable

from tenacity import AsyncRetrying, AttemptManager, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_base, wait_exponential, wait_random

from proxy.config import RetrySettings
from proxy.engine.failures import AttemptFailed


class _stop_at_deadline(stop_base):
    """Stop when the next attempt could not start before the stream's deadline."""

    def __init__(self, deadline: float, clock: Callable[[], float]) -> None:
        self._deadline = deadline
        self._clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._clock() + retry_state.upcoming_sleep >= self._deadline


class _wait_backoff_or_retry_after(wait_base):
    def __init__(self, policy: RetrySettings) -> None:
        self._backoff = wait_exponential(
            multiplier=policy.backoff_initial_s, max=policy.backoff_max_s
        ) + wait_random(0, policy.backoff_jitter_s)
        self._cap = policy.retry_after_cap_s

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, AttemptFailed) and exc.failure.retry_after is not None:
            return min(max(exc.failure.retry_after, 0.0), self._cap)
        return float(self._backoff(retry_state))


def build_retrying(
    policy: RetrySettings,
    deadline: float,
    *,
    may_retry: Callable[[BaseException], bool],
    before_sleep: Callable[[RetryCallState], None],
    sleep: Callable[[float], Awaitable[None]],
    clock: Callable[[], float] = time.monotonic,
) -> AsyncRetrying:
    """Attempts on one model; the last AttemptFailed is re-raised when they are spent or when
    `may_retry` says no."""
    return AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts) | _stop_at_deadline(deadline, clock),
        wait=_wait_backoff_or_retry_after(policy),
        retry=retry_if_exception(may_retry),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )


class Retries:
    """Tenacity's iteration over one model's attempts, from the first failure on (building and
    starting it cost about 70 µs, which a stream that succeeds at once does without)."""

    def __init__(
        self,
        policy: RetrySettings,
        deadline: float,
        may_retry: Callable[[BaseException], bool],
        cancelled: asyncio.Event,
    ) -> None:
        """`cancelled`: set when the stream is cancelled, which cuts a backoff short."""
        self._cancelled = cancelled
        self._announced: asyncio.Future[float] | None = None
        self._attempt: AttemptManager | None = None
        self._iterator = aiter(
            build_retrying(
                policy, deadline, may_retry=may_retry, before_sleep=self._sleep_begins, sleep=self._sleep
            )
        )

    async def failed(self, exc: AttemptFailed) -> None:
        """The attempt under way (at first, the one run before tenacity joined) failed with `exc`."""
        if self._attempt is None:
            self._attempt = await anext(self._iterator)
        # Not `with attempt:` around the attempt: tenacity's AttemptManager would swallow the
        # GeneratorExit and CancelledError that close a stream.
        self._attempt.retry_state.set_exception((type(exc), exc, exc.__traceback__))

    async def backoffs(self) -> AsyncGenerator[float, None]:
        """Tenacity decides after a failure: the backoff it chose, before it is slept; the generator
        ends when the next attempt may start. Raises the failure when no attempt follows.

        Tenacity chooses the delay, calls `before_sleep`, then sleeps inside its iterator; the
        iterator therefore runs as a task, so that the backoff is known before it is slept."""
        loop = asyncio.get_running_loop()
        self._announced = announced = loop.create_future()
        step = asyncio.ensure_future(anext(self._iterator))
        try:
            await asyncio.wait((step, announced), return_when=asyncio.FIRST_COMPLETED)
            if announced.done():
                yield announced.result()
            self._attempt = await step
        finally:
            self._announced = None
            if not step.done():
                step.cancel()
                await asyncio.gather(step, return_exceptions=True)

    def _sleep_begins(self, retry_state: RetryCallState) -> None:
        """Tenacity's `before_sleep`: the backoff is chosen."""
        if self._announced is not None and not self._announced.done():
            self._announced.set_result(retry_state.upcoming_sleep)

    async def _sleep(self, seconds: float) -> None:
        """Tenacity's `sleep`, cut short when the stream is cancelled."""
        try:
            async with asyncio.timeout(seconds):
                await self._cancelled.wait()
        except TimeoutError:
            pass
