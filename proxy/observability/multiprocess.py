"""prometheus-client's multiprocess mode for `agent-proxy serve --workers N`: one view of all workers.

Every worker writes its numbers to files in `PROMETHEUS_MULTIPROC_DIR`; a scrape of any worker merges
all of them. prometheus-client drops exemplars in this mode, so each worker also keeps the latest
exemplar per histogram bucket in a small side file (`exemplars_<pid>.json`, written at most once a
second) that the collection merges back.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import glob
import json
import os
import tempfile
import time
from collections.abc import Iterable
from typing import Any, Final

from prometheus_client import Histogram, values
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
EXEMPLAR_LABEL: Final = "trace_id"


def multiprocess_dir() -> str | None:
    """The multiprocess directory when prometheus-client's multiprocess mode is on, else None."""
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_multiprocess_dir(path: str | None = None) -> str:
    """For the parent of N workers, before it starts them: an empty metrics directory, exported as
    `PROMETHEUS_MULTIPROC_DIR` so that the workers inherit it. Files of a previous run are removed
    (they would be counted again)."""
    if path is None:
        path = tempfile.mkdtemp(prefix="agent-proxy-metrics-")
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith((".db", ".json")):
            os.remove(os.path.join(path, name))
    os.environ[MULTIPROC_ENV] = path
    setup_multiprocess(path)
    return path


def setup_multiprocess(path: str) -> None:
    """Switch this process to multiprocess mode (before any metric is created).

    prometheus-client decides the mode when it is first imported; this covers processes that
    imported it before the variable was set (a forked worker, a test)."""
    os.environ[MULTIPROC_ENV] = path
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def setup_single_process() -> None:
    """Switch this process back to prometheus-client's in-memory values.

    prometheus-client enters multiprocess mode when `PROMETHEUS_MULTIPROC_DIR` merely exists, even
    empty: its values would then go to files in the working directory and exemplars would be lost,
    while `multiprocess_dir()` (rightly) treats an empty variable as unset."""
    if getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MutexValue


def worker_exited(pid: int, path: str | None = None) -> None:
    """For the parent, when a worker process ended: drop its live gauges (active streams, circuit
    state) and its exemplars. Its counters and histograms stay, as they must."""
    path = path or multiprocess_dir()
    if not path:
        return
    mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(path, f"exemplars_{pid}.json"))


class ExemplarStore:
    """The latest exemplar per histogram bucket of this process, written to
    `exemplars_<pid>.json` in the multiprocess directory at most once a second."""

    FLUSH_AFTER_S: Final = 1.0

    def __init__(self, path: str) -> None:
        self._path = path
        self._latest: dict[str, list[Any]] = {}
        self._dirty = False
        self._scheduled = False

    def record(self, hist: Histogram, labels: tuple[str, ...], value: float, trace_id: str) -> None:
        bounds: list[float] = hist._upper_bounds
        le = bounds[bisect.bisect_left(bounds, value)]
        key = json.dumps([hist._name, dict(zip(hist._labelnames, labels, strict=True)), le])
        self._latest[key] = [trace_id, value, time.time()]
        self._dirty = True
        if not self._scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._scheduled = True
            loop.call_later(self.FLUSH_AFTER_S, self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._dirty:
            return
        self._dirty = False
        target = os.path.join(self._path, f"exemplars_{os.getpid()}.json")
        tmp = f"{target}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self._latest, f)
        os.replace(tmp, target)


class MultiProcessExemplarCollector(Collector):
    """prometheus-client's `MultiProcessCollector`, with the workers' exemplars put back."""

    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self) -> Iterable[Metric]:
        files = glob.glob(os.path.join(self.path, "*.db"))
        metrics: list[Metric] = list(MultiProcessCollector.merge(files, accumulate=True))  # type: ignore[no-untyped-call]
        latest: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[str, float, float]] = {}
        for name in glob.glob(os.path.join(self.path, "exemplars_*.json")):
            try:
                with open(name, encoding="utf-8") as f:
                    data: dict[str, list[Any]] = json.load(f)
            except (OSError, ValueError):
                continue  # a worker is replacing it right now; its exemplars come next scrape
            for key, (trace_id, value, ts) in data.items():
                metric, labels, le = json.loads(key)
                labels["le"] = floatToGoString(le)  # type: ignore[no-untyped-call]
                k = (metric, tuple(sorted(labels.items())))
                if k not in latest or latest[k][2] < ts:
                    latest[k] = (trace_id, value, ts)
        for m in metrics:
            if m.type == "histogram" and latest:
                for i, s in enumerate(m.samples):
                    if s.name.endswith("_bucket"):
                        hit = latest.get((m.name, tuple(sorted(s.labels.items()))))
                        if hit is not None:
                            ex = Exemplar({EXEMPLAR_LABEL: hit[0]}, hit[1], hit[2])
                            m.samples[i] = s._replace(exemplar=ex)
        return metrics
