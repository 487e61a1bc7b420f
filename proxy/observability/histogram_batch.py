"""Observations of one histogram child, counted locally and added to it in bulk.

The inter-token histogram is observed once per chunk. prometheus-client's `observe` takes a lock for
the sum and another for the bucket and walks the bounds in Python: under load that was the largest
single cost of a chunk in the proxy's own code (docs/performance.md). A stream counts its gaps here
instead (a bisect and two additions) and adds them to the histogram at most `FLUSH_S` after the
first unflushed one and when it ends, so a scrape sees them at most that late.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

from prometheus_client import Histogram

FLUSH_S: Final = 1.0


class HistogramBatch:
    __slots__ = ("_bounds", "_child", "_counts", "_due", "_sum")

    def __init__(self, child: Histogram) -> None:
        self._child = child
        self._bounds: list[float] = child._upper_bounds  # the last one is +Inf
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        self._due: float | None = None

    def observe(self, value: float, now: float) -> None:
        """`value` as `child.observe(value)` would count it (`le` is inclusive); `now`: a monotonic time."""
        self._counts[bisect_left(self._bounds, value)] += 1
        self._sum += value
        if self._due is None:
            self._due = now + FLUSH_S
        elif now >= self._due:
            self.flush()

    def flush(self) -> None:
        """Add what was counted to the histogram."""
        if self._due is None:
            return
        self._due = None
        buckets = self._child._buckets
        counts = self._counts
        for i, count in enumerate(counts):
            if count:
                buckets[i].inc(count)
                counts[i] = 0
        self._child._sum.inc(self._sum)
        self._sum = 0.0
