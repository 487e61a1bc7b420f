"""The tenacity policy for one model's attempts: exponential backoff with jitter, Retry-After
honoured up to a cap, bounded by `max_attempts` and by the stream's total deadline.

The stream runs its first attempt without it; from the first failure on it iterates
`AsyncRetrying` (whose first iteration stands for that attempt) and sets each attempt's outcome
itself (so that the attempt's events reach the client as they arrive, and cancellation is never
captured as an outcome); tenacity decides whether another attempt follows (`retry`, `stop`), when
(`wait`), and tells the stream before it sleeps (`before_sleep`), so that the `retry` event goes out
before the backoff.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
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
