"""Circuit breakers, one per upstream model: closed -> open after N consecutive failures ->
half-open after a cool-down (one probe at a time) -> closed on success, open again on failure.

Opening logs one WARNING line (model, the last failure's cause, the consecutive failures) and closing
one INFO line (how long it was not closed, how many attempts it kept off the model meanwhile).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import StrEnum

from proxy.log_fields import fields

log = logging.getLogger("agent_proxy.circuit")


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self, model: str, failure_threshold: int, cooldown_s: float, clock: Callable[[], float]
    ) -> None:
        self.model = model
        self._threshold = failure_threshold
        self._cooldown = cooldown_s
        self._clock = clock
        self.state = CircuitState.CLOSED
        self.failures = 0
        self._opened_at = 0.0
        self._first_opened_at = 0.0
        self._refused = 0
        self._probing = False

    def acquire(self) -> tuple[bool, CircuitState | None]:
        """May an attempt go to this model now? Also returns the new state if it changed."""
        if self.state is CircuitState.CLOSED:
            return True, None
        if self.state is CircuitState.OPEN:
            if self._clock() - self._opened_at < self._cooldown:
                self._refused += 1
                return False, None
            self.state = CircuitState.HALF_OPEN
            self._probing = True
            return True, CircuitState.HALF_OPEN
        if self._probing:
            self._refused += 1
            return False, None
        self._probing = True
        return True, None

    def release(self) -> None:
        """The attempt ended without a verdict on the upstream (cancelled, client error)."""
        self._probing = False

    def record_success(self) -> CircuitState | None:
        self.failures = 0
        self._probing = False
        if self.state is CircuitState.CLOSED:
            return None
        self.state = CircuitState.CLOSED
        log.info(
            "circuit of %s closed",
            self.model,
            extra=fields(
                event="circuit_closed",
                model=self.model,
                open_s=round(self._clock() - self._first_opened_at, 3),
                refused=self._refused,
            ),
        )
        return self.state

    def record_failure(self, cause: str) -> CircuitState | None:
        """A failure that speaks about the model's health; `cause` is its reason (e.g. `http_503`)."""
        self.failures += 1
        self._probing = False
        if self.state is CircuitState.HALF_OPEN:
            self.state = CircuitState.OPEN
            self._opened_at = self._clock()
            return self.state
        if self.state is CircuitState.CLOSED and self.failures >= self._threshold:
            self.state = CircuitState.OPEN
            self._opened_at = self._first_opened_at = self._clock()
            self._refused = 0
            log.warning(
                "circuit of %s opened",
                self.model,
                extra=fields(
                    event="circuit_opened",
                    model=self.model,
                    cause=cause,
                    failures=self.failures,
                    cooldown_s=self._cooldown,
                ),
            )
            return self.state
        return None


class Breakers:
    """The breakers of all models, created on first use."""

    def __init__(
        self, failure_threshold: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._threshold = failure_threshold
        self._cooldown = cooldown_s
        self.clock = clock
        """Replaceable, so that tests can move time forward."""
        self._breakers: dict[str, CircuitBreaker] = {}

    def __getitem__(self, model: str) -> CircuitBreaker:
        breaker = self._breakers.get(model)
        if breaker is None:
            breaker = self._breakers[model] = CircuitBreaker(
                model, self._threshold, self._cooldown, lambda: self.clock()
            )
        return breaker

    def states(self) -> dict[str, str]:
        return {model: b.state.value for model, b in sorted(self._breakers.items())}
