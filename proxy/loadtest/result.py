"""The summary of a run (`LoadResult`), computed from its request records with the stats module."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from proxy.loadtest.config import LoadConfig
from proxy.loadtest.record import RequestRecord
from proxy.loadtest.stats import summarize

# The measured window never counts as shorter than this, so rates stay finite.
_MIN_WINDOW_S = 1e-6
# Above these the load generator may be the bottleneck; the summary says so.
TOOL_CPU_WARN_PCT = 80.0
TOOL_LAG_P99_WARN_S = 0.010
TOOL_LAG_MAX_WARN_S = 0.100


@dataclass(kw_only=True)
class LoadResult:
    """Every latency dict holds count/min/mean/p50/p90/p95/p99/max in seconds, over the measured
    (non-warm-up) requests that succeeded:

    - `ttft`: intended send time -> first content-bearing event;
    - `itl`: every inter-chunk gap (between consecutive content events) of those requests, pooled;
    - `itl_mean`: per request, (E2E - TTFT) / (chunks - 1), for requests with two chunks or more;
    - `e2e`: intended send time -> end of stream;
    - `send_lag`: actual - intended send time (queueing for a slot; the tool lagging its schedule).

    Rates are per second of the measured window: from the first measured request's intended send
    time to the last measured request's end. `requests_per_s` counts all completed requests,
    `ok_per_s` the successful ones, `goodput_per_s` those that met every SLO given.

    `tool_cpu_s` and `tool_loop_lag` (how late the tool's event loop woke a 50 ms sleeper) tell
    whether the load generator itself kept up; see `tool_saturated`.
    """

    config: LoadConfig
    records: list[RequestRecord] = field(repr=False)
    total: int
    ok: int
    warmup: int
    errors: dict[str, int]
    window_s: float
    wall_s: float
    requests_per_s: float
    ok_per_s: float
    chunks: int
    chunks_per_s: float
    tokens: int
    tokens_per_s: float
    retries: int
    heartbeats: int
    ttft: dict[str, float]
    itl: dict[str, float]
    itl_mean: dict[str, float]
    e2e: dict[str, float]
    send_lag: dict[str, float]
    goodput: int | None
    goodput_per_s: float | None
    hard_stopped: bool
    tool_cpu_s: float = 0.0
    tool_loop_lag: dict[str, float] = field(default_factory=lambda: {"count": 0})

    @property
    def tool_cpu_pct(self) -> float:
        """The load generator's CPU use over the run, in percent of one core."""
        return 100.0 * self.tool_cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def tool_saturated(self) -> bool:
        """Whether the tool itself was likely slow enough to inflate the latencies it measured."""
        lag = self.tool_loop_lag
        return (
            self.tool_cpu_pct > TOOL_CPU_WARN_PCT
            or lag.get("p99", 0.0) > TOOL_LAG_P99_WARN_S
            or lag.get("max", 0.0) > TOOL_LAG_MAX_WARN_S
        )

    @property
    def measured(self) -> list[RequestRecord]:
        return [r for r in self.records if not r.warmup]

    @property
    def failed(self) -> int:
        return self.total - self.ok

    def summary_dict(self) -> dict[str, Any]:
        """Everything but the per-request records."""
        return {
            "config": self.config.to_dict(),
            "total": self.total,
            "ok": self.ok,
            "failed": self.failed,
            "warmup": self.warmup,
            "errors": self.errors,
            "window_s": self.window_s,
            "wall_s": self.wall_s,
            "requests_per_s": self.requests_per_s,
            "ok_per_s": self.ok_per_s,
            "chunks": self.chunks,
            "chunks_per_s": self.chunks_per_s,
            "tokens": self.tokens,
            "tokens_per_s": self.tokens_per_s,
            "retries": self.retries,
            "heartbeats": self.heartbeats,
            "ttft": self.ttft,
            "itl": self.itl,
            "itl_mean": self.itl_mean,
            "e2e": self.e2e,
            "send_lag": self.send_lag,
            "slos": self.config.slos,
            "goodput": self.goodput,
            "goodput_per_s": self.goodput_per_s,
            "hard_stopped": self.hard_stopped,
            "tool": {
                "cpu_s": self.tool_cpu_s,
                "cpu_pct": self.tool_cpu_pct,
                "loop_lag": self.tool_loop_lag,
                "saturated": self.tool_saturated,
            },
            "definitions": {
                "ttft": "intended send time -> first delta/output event (not the HTTP headers)",
                "itl": "distribution of every gap between consecutive content events",
                "itl_mean": "(E2E - TTFT) / (chunks - 1) per request",
                "e2e": "intended send time -> end event / [DONE] / failure",
                "goodput": "successful requests meeting every SLO given (itl SLO on itl_mean), per second",
            },
        }

    def to_dict(self, records: bool = True) -> dict[str, Any]:
        out = self.summary_dict()
        if records:
            out["records"] = [r.to_dict() for r in self.records]
        return out


def meets_slos(rec: RequestRecord, slos: dict[str, float]) -> bool:
    """Whether a successful request met every SLO; the ITL SLO applies to its mean ITL."""
    if not rec.ok:
        return False
    ttft, e2e, itl = rec.ttft_s, rec.e2e_s, rec.itl_mean_s
    if "ttft" in slos and (ttft is None or ttft > slos["ttft"]):
        return False
    if "e2e" in slos and (e2e is None or e2e > slos["e2e"]):
        return False
    return not ("itl" in slos and itl is not None and itl > slos["itl"])


def build_result(
    config: LoadConfig,
    records: list[RequestRecord],
    *,
    wall_s: float,
    hard_stopped: bool = False,
    tool_cpu_s: float = 0.0,
    loop_lag: list[float] | None = None,
) -> LoadResult:
    """Summarize records whose times are already relative to the run start (`RequestRecord.finish`)."""
    records = sorted(records, key=lambda r: r.index)
    measured = [r for r in records if not r.warmup]
    good = [r for r in measured if r.ok]
    if measured:
        start = min(r.intended for r in measured)
        end = max((r.ended if r.ended is not None else r.intended) for r in measured)
        window = max(end - start, _MIN_WINDOW_S)
    else:
        window = _MIN_WINDOW_S
    errors = Counter(r.error for r in measured if r.error is not None)
    chunks = sum(r.chunks for r in measured)
    tokens = sum(r.output_tokens or 0 for r in good)
    slos = config.slos
    goodput = sum(1 for r in good if meets_slos(r, slos)) if slos else None
    return LoadResult(
        config=config,
        records=records,
        total=len(measured),
        ok=len(good),
        warmup=len(records) - len(measured),
        errors=dict(errors.most_common()),
        window_s=window,
        wall_s=wall_s,
        requests_per_s=len(measured) / window,
        ok_per_s=len(good) / window,
        chunks=chunks,
        chunks_per_s=chunks / window,
        tokens=tokens,
        tokens_per_s=tokens / window,
        retries=sum(r.retries for r in measured),
        heartbeats=sum(r.heartbeats for r in measured),
        ttft=summarize(v for r in good if (v := r.ttft_s) is not None),
        itl=summarize(g for r in good for g in r.gaps),
        itl_mean=summarize(v for r in good if (v := r.itl_mean_s) is not None),
        e2e=summarize(v for r in good if (v := r.e2e_s) is not None),
        send_lag=summarize(v for r in measured if (v := r.send_lag_s) is not None),
        goodput=goodput,
        goodput_per_s=None if goodput is None else goodput / window,
        hard_stopped=hard_stopped,
        tool_cpu_s=tool_cpu_s,
        tool_loop_lag=summarize(loop_lag or []),
    )
