"""`HistogramBatch` counts as `Histogram.observe` does, and reaches the histogram within a second."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram

from proxy.observability.histogram_batch import FLUSH_S, HistogramBatch

BUCKETS = (0.01, 0.05, 0.1)
# On the bounds too: `le` is inclusive.
VALUES = (0.0, 0.01, 0.02, 0.05, 0.0999, 0.1, 0.3, 7.0)


def _samples(hist: Histogram) -> dict[tuple[str, str], float]:
    return {
        (s.name, s.labels.get("le", "")): s.value
        for metric in hist.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


def _pair() -> tuple[Histogram, Histogram]:
    registry = CollectorRegistry()
    return (
        Histogram("direct", "observed one by one", ["model"], buckets=BUCKETS, registry=registry),
        Histogram("batched", "observed in a batch", ["model"], buckets=BUCKETS, registry=registry),
    )


def _renamed(samples: dict[tuple[str, str], float], name: str) -> dict[tuple[str, str], float]:
    return {(n.replace(name, "h"), le): v for (n, le), v in samples.items()}


def test_a_flushed_batch_counts_as_observe_does() -> None:
    direct, batched = _pair()
    batch = HistogramBatch(batched.labels("m"))
    for value in VALUES:
        direct.labels("m").observe(value)
        batch.observe(value, now=0.0)
    assert _samples(batched)[("batched_count", "")] == 0  # nothing is due yet
    batch.flush()
    assert _renamed(_samples(batched), "batched") == _renamed(_samples(direct), "direct")
    batch.flush()  # nothing new: nothing added twice
    assert _samples(batched)[("batched_count", "")] == len(VALUES)


def test_observations_reach_the_histogram_once_they_are_a_second_old() -> None:
    _, batched = _pair()
    batch = HistogramBatch(batched.labels("m"))
    batch.observe(0.02, now=100.0)
    batch.observe(0.02, now=100.0 + FLUSH_S / 2)
    assert _samples(batched)[("batched_count", "")] == 0
    batch.observe(0.2, now=100.0 + FLUSH_S)
    samples = _samples(batched)
    assert samples[("batched_count", "")] == 3
    assert samples[("batched_bucket", "0.05")] == 2
    assert samples[("batched_sum", "")] == pytest.approx(0.24)
