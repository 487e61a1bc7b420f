"""Pure statistics for load-test results: percentiles, distribution summaries, time buckets."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

PERCENTILES: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100) of already sorted values, linearly interpolated (numpy's default).

    Raises ValueError on an empty sequence: callers decide what "no data" means.
    """
    n = len(sorted_values)
    if n == 0:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= p <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {p}")
    rank = (p / 100.0) * (n - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, n - 1)
    frac = rank - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


def summarize(values: Iterable[float]) -> dict[str, float]:
    """count, min, mean, p50/p90/p95/p99, max of the values; only `count` (0) when there are none."""
    data = sorted(values)
    if not data:
        return {"count": 0}
    out: dict[str, float] = {"count": len(data), "min": data[0], "mean": math.fsum(data) / len(data)}
    for p in PERCENTILES:
        out[f"p{p:g}"] = percentile(data, p)
    out["max"] = data[-1]
    return out


def mean_itl(e2e_s: float, ttft_s: float, chunks: int) -> float | None:
    """Mean inter-chunk latency of one request: (E2E - TTFT) / (chunks - 1); None below two chunks."""
    if chunks < 2:
        return None
    return (e2e_s - ttft_s) / (chunks - 1)


def bucket_counts(times: Iterable[float], start: float, width: float, n_buckets: int) -> list[int]:
    """How many of `times` fall in each of `n_buckets` buckets of `width` seconds from `start`.

    Times past the end go to the last bucket, times before `start` are dropped.
    """
    if width <= 0 or n_buckets <= 0:
        raise ValueError("width and n_buckets must be positive")
    counts = [0] * n_buckets
    for t in times:
        if t < start:
            continue
        i = int((t - start) / width)
        counts[min(i, n_buckets - 1)] += 1
    return counts


def bucket_values(
    points: Iterable[tuple[float, float]], start: float, width: float, n_buckets: int
) -> list[list[float]]:
    """Group (time, value) points into `n_buckets` time buckets (same edges as `bucket_counts`)."""
    if width <= 0 or n_buckets <= 0:
        raise ValueError("width and n_buckets must be positive")
    out: list[list[float]] = [[] for _ in range(n_buckets)]
    for t, v in points:
        if t < start:
            continue
        i = int((t - start) / width)
        out[min(i, n_buckets - 1)].append(v)
    return out


def histogram(values: Sequence[float], bins: int, lo: float, hi: float) -> tuple[list[int], int]:
    """Counts of `values` in `bins` equal bins over [lo, hi], and how many lay above `hi`."""
    if bins <= 0:
        raise ValueError("bins must be positive")
    counts = [0] * bins
    over = 0
    width = (hi - lo) / bins if hi > lo else 1.0
    for v in values:
        if v > hi:
            over += 1
            continue
        i = int((v - lo) / width) if v > lo else 0
        counts[min(i, bins - 1)] += 1
    return counts, over
