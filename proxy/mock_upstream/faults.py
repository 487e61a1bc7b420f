"""Which requests fault (`fault_times`, `fault_prob`, `fault_every`, `seed`); `Retry-After` on HTTP faults."""

from __future__ import annotations

import random

from aiohttp import web

from proxy.mock_upstream.behaviour import MockBehaviour


def add_retry_after(response: web.Response, behaviour: MockBehaviour) -> web.Response:
    """`Retry-After` (and `retry-after-ms`) on an HTTP fault's answer when `retry_after` is set."""
    if behaviour.retry_after is not None:
        seconds = behaviour.retry_after
        response.headers["Retry-After"] = str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"
        response.headers["retry-after-ms"] = str(round(seconds * 1000))
    return response


class FaultSelector:
    """Decides per request whether its fault applies; counters and random sequences are per model string."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._rngs: dict[str, random.Random] = {}

    def select(self, key: str, behaviour: MockBehaviour) -> str | None:
        """The fault to inject into this request, or None.

        With `fault_every=N`, requests 1, N+1, 2N+1, ... with `key` fault and the others do not.
        Otherwise the first `fault_times` requests fault; after them (or without `fault_times`),
        `fault_prob` decides if given; with neither, every request faults.
        """
        fault = behaviour.fault
        if fault is None:
            return None
        seen = self._counts.get(key, 0)
        self._counts[key] = seen + 1
        if behaviour.fault_every is not None:
            return fault if seen % behaviour.fault_every == 0 else None
        times, prob = behaviour.fault_times, behaviour.fault_prob
        if times is None and prob is None:
            return fault
        if times is not None and seen < times:
            return fault
        if prob is not None:
            rng = self._rngs.get(key)
            if rng is None:
                rng = self._rngs[key] = random.Random(behaviour.seed)
            return fault if rng.random() < prob else None
        return None

    def reset(self) -> None:
        self._counts.clear()
        self._rngs.clear()
