"""Open-loop arrival schedules: the intended send times, constant or Poisson (seeded, reproducible)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

from proxy.loadtest.config import Arrival


def arrival_offsets(rate: float, arrival: Arrival = "constant", seed: int | None = None) -> Iterator[float]:
    """Endless intended send times in seconds from the start; the first request goes at 0.

    `constant`: k / rate. `poisson`: exponential gaps of mean 1 / rate drawn from a
    `random.Random(seed)` of its own, so one seed always gives the same schedule.
    """
    if rate <= 0:
        raise ValueError("rate must be > 0")
    if arrival == "constant":
        for k in itertools.count():
            yield k / rate
    elif arrival == "poisson":
        rng = random.Random(seed)
        t = 0.0
        while True:
            yield t
            t += rng.expovariate(rate)
    else:
        raise ValueError(f"unknown arrival {arrival!r}")
