"""Prometheus metrics of docs/monitoring.md, recorded by one observer of the event stream.

`ProxyMetrics` owns the metric objects and the exposition (`render`); `MetricsObserver`
(`metrics_observer.py`) turns the events `transports/pump.py` reports into observations. Label
values come only from bounded sets: agent and model names from the config (anything else becomes
`other`), the transports, the stream outcomes, key names (the first `max_keys` seen), and
free-form engine vocabulary (retry reasons, error types) capped per label.

With several worker processes the metrics go through prometheus-client's multiprocess mode
(`multiprocess.py`), so that a scrape of any worker shows all of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from importlib import metadata
from typing import Final, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from proxy.observability.loop_metrics import LoopMetrics
from proxy.observability.multiprocess import (
    EXEMPLAR_LABEL,
    ExemplarStore,
    MultiProcessExemplarCollector,
    multiprocess_dir,
    setup_multiprocess,
    setup_single_process,
)
from proxy.observability.observer import ANONYMOUS_KEY, StreamOutcome, Transport

OTHER: Final = "other"
"""The label value for anything outside a bounded set (an agent or model not in the config...)."""

TRANSPORTS: Final[tuple[Transport, ...]] = get_args(Transport)
OUTCOMES: Final[tuple[StreamOutcome, ...]] = get_args(StreamOutcome)

RESUME_OUTCOMES: Final = ("resumed", "unknown", "state_unavailable")
STATE_OPS: Final = (
    "ping", "conversation_get", "conversation_put", "append", "lease_renew", "resume", "follow",
    "takeover", "followed",
)  # fmt: skip
STATE_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""A Redis round trip on a LAN: sub-millisecond when well, up to the operation timeout when not."""

# Buckets (seconds): the OpenTelemetry GenAI recommendations, extended down to 1 ms (a proxy sees
# sub-10 ms gaps) and up to minutes (reasoning models, long answers). SLO thresholds are added as
# edges by `ProxyMetrics` so that histogram_quantile answers exactly at them.
# fmt: off
TTFT_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0,
)
INTER_TOKEN_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
    1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0,
)
DURATION_BUCKETS: Final = (
    0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96,
    81.92, 163.84, 327.68, 655.36,
)
# fmt: on

_LABEL_CHARS = re.compile(r"[^a-z0-9_]+")


def with_edge(buckets: Sequence[float], edge: float) -> tuple[float, ...]:
    """`buckets` with `edge` added (an SLO threshold must be a bucket edge)."""
    return tuple(sorted({*buckets, float(edge)}))


def package_version() -> str:
    try:
        return metadata.version("agent-proxy")
    except metadata.PackageNotFoundError:
        return "unknown"


# --- metrics -----------------------------------------------------------------------------------


class _BoundedLabel:
    """Maps values to a bounded set of label values: a fixed allow-list, or the first `limit`
    distinct values seen (normalised to `[a-z0-9_]` unless `normalise` is off), then `other`."""

    __slots__ = ("_allowed", "_labels", "_limit", "_normalise", "_seen")

    def __init__(
        self, allowed: Iterable[str] | None = None, limit: int = 32, *, normalise: bool = True
    ) -> None:
        self._allowed = frozenset(allowed) if allowed is not None else None
        self._limit = limit
        self._normalise = normalise
        self._seen: dict[str, str] = {}
        self._labels: set[str] = set()

    def __call__(self, value: str) -> str:
        label = self._seen.get(value)
        if label is not None:
            return label
        if self._allowed is not None:
            label = value if value in self._allowed else OTHER
        else:
            label = (
                _LABEL_CHARS.sub("_", value.lower()).strip("_")[:48] if self._normalise else value
            ) or OTHER
            if label not in self._labels and len(self._labels) >= self._limit:
                label = OTHER
        self._labels.add(label)
        if len(self._seen) < 8 * self._limit:
            self._seen[value] = label
        return label


class ProxyMetrics:
    """The metric objects of docs/monitoring.md and their exposition.

    Normal mode: the metrics live in `registry` (a fresh one by default, so that `/metrics` shows
    exactly these). Multiprocess mode (`multiproc_dir` given or `PROMETHEUS_MULTIPROC_DIR` set):
    every worker writes its own files and `render` merges all of them.
    """

    def __init__(
        self,
        agents: Iterable[str],
        models: Iterable[str],
        *,
        registry: CollectorRegistry | None = None,
        multiproc_dir: str | None = None,
        slo_ttft_s: float | None = None,
        slo_inter_token_s: float | None = None,
        keys: Iterable[str] = (ANONYMOUS_KEY,),
        max_keys: int = 100,
    ) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.multiproc_dir = multiproc_dir or multiprocess_dir()
        if self.multiproc_dir:
            setup_multiprocess(self.multiproc_dir)
            reg = None  # the files are the truth; `render` reads them
            self.registry = None
        else:
            setup_single_process()
            reg = self.registry = registry if registry is not None else CollectorRegistry()
            reg.register(_BuildInfoCollector())
        agents, models = sorted(set(agents)), sorted(set(models))
        self.agent_label = _BoundedLabel(agents)
        self.model_label = _BoundedLabel(models)
        self.reason_label = _BoundedLabel()
        self.error_type_label = _BoundedLabel()
        # Key names are configured (validated), so they are shown as written; reloads may add names.
        keys = list(dict.fromkeys(keys))[:max_keys]
        self.key_label = _BoundedLabel(limit=max_keys, normalise=False)
        for key in keys:
            self.key_label(key)
        self.exemplars = ExemplarStore(self.multiproc_dir) if self.multiproc_dir else None

        ttft_buckets = with_edge(TTFT_BUCKETS, slo_ttft_s) if slo_ttft_s else TTFT_BUCKETS
        itl_buckets = (
            with_edge(INTER_TOKEN_BUCKETS, slo_inter_token_s) if slo_inter_token_s else INTER_TOKEN_BUCKETS
        )

        self.requests = Counter(
            "agent_proxy_requests_total",
            "Streams finished, by outcome (finish reason or client_disconnect).",
            ["agent", "transport", "outcome", "key"],
            registry=reg,
        )
        self.duration = Histogram(
            "agent_proxy_request_duration_seconds",
            "From request arrival to the end of the stream.",
            ["agent", "transport"],
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self.ttft = Histogram(
            "agent_proxy_time_to_first_token_seconds",
            "From request arrival to the first delta or output event written to the client.",
            ["agent", "model", "transport"],
            buckets=ttft_buckets,
            registry=reg,
        )
        self.inter_token = Histogram(
            "agent_proxy_inter_token_seconds",
            "Gap between consecutive delta or output events of one upstream attempt.",
            ["agent", "model"],
            buckets=itl_buckets,
            registry=reg,
        )
        self.active_streams = Gauge(
            "agent_proxy_active_streams",
            "Streams in progress.",
            ["transport"],
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.attempts = Counter(
            "agent_proxy_upstream_attempts_total",
            "Upstream attempts, by how they ended (success, error, cancelled).",
            ["agent", "model", "outcome"],
            registry=reg,
        )
        self.retries = Counter(
            "agent_proxy_retries_total",
            "Retries of a stream, by the reason the previous attempt failed.",
            ["agent", "model", "reason"],
            registry=reg,
        )
        self.fallbacks = Counter(
            "agent_proxy_fallbacks_total",
            "Moves from a model (label) to the next fallback model of the agent.",
            ["agent", "model"],
            registry=reg,
        )
        self.upstream_errors = Counter(
            "agent_proxy_upstream_errors_total",
            "Failed upstream attempts, by error type.",
            ["agent", "model", "error_type"],
            registry=reg,
        )
        self.tokens = Counter(
            "agent_proxy_tokens_total",
            "Tokens as reported by the upstream (token_type: input, output).",
            ["agent", "model", "token_type", "key"],
            registry=reg,
        )
        self.heartbeats = Counter(
            "agent_proxy_heartbeats_total",
            "Heartbeat events sent to keep idle streams alive.",
            ["transport"],
            registry=reg,
        )
        self.client_disconnects = Counter(
            "agent_proxy_client_disconnects_total",
            "Streams whose client went away before the end event.",
            ["transport"],
            registry=reg,
        )
        self.circuit_open = Gauge(
            "agent_proxy_circuit_open",
            "1 while the model's circuit breaker is not closed (open or half-open).",
            ["model"],
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.rate_limited_total = Counter(
            "agent_proxy_rate_limited_total",
            "Requests refused because their key is over a limit (requests, tokens, concurrency).",
            ["key", "limit"],
            registry=reg,
        )
        self.auth_failures = Counter(
            "agent_proxy_auth_failures_total",
            "Requests refused with 401, by reason (missing, invalid_key, invalid_token, expired_token, ...).",
            ["reason"],
            registry=reg,
        )
        self.auth_reason_label = _BoundedLabel()

        self.resumes = Counter(
            "agent_proxy_resumes_total",
            "Requests to resume a stream from its log (outcome: resumed, unknown, state_unavailable).",
            ["outcome"],
            registry=reg,
        )
        self.takeovers = Counter(
            "agent_proxy_takeovers_total",
            "Streams this process took over after the process running them was lost.",
            registry=reg,
        )
        self.state_errors = Counter(
            "agent_proxy_state_errors_total",
            "Shared-state (Redis) operations that failed or timed out, by operation.",
            ["op"],
            registry=reg,
        )
        self.state_latency = Histogram(
            "agent_proxy_state_operation_seconds",
            "Duration of shared-state (Redis) operations, by operation.",
            ["op"],
            buckets=STATE_BUCKETS,
            registry=reg,
        )

        self.loop = LoopMetrics(reg)

        # Series that dashboards and alerts divide by or compare exist from the start, at zero.
        self.transport_children = {
            t: (self.active_streams.labels(t), self.heartbeats.labels(t), self.client_disconnects.labels(t))
            for t in TRANSPORTS
        }
        for agent in agents:
            for t in TRANSPORTS:
                for outcome in OUTCOMES:
                    for key in keys:
                        self.requests.labels(agent, t, outcome, key)
        for model in models:
            self.circuit_open.labels(model).set(0)
        for resume_outcome in RESUME_OUTCOMES:
            self.resumes.labels(resume_outcome)
        for op in STATE_OPS:
            self.state_errors.labels(op)

    def rate_limited(self, key: str, limit: str) -> None:
        self.rate_limited_total.labels(self.key_label(key), limit).inc()

    def auth_failed(self, reason: str) -> None:
        self.auth_failures.labels(self.auth_reason_label(reason)).inc()

    def observe_with_exemplar(
        self, hist: Histogram, labels: tuple[str, ...], child: Histogram, value: float, trace_id: str | None
    ) -> None:
        """`child.observe(value)` with the trace id as exemplar (kept aside in multiprocess mode)."""
        if trace_id is None:
            child.observe(value)
        elif self.exemplars is None:
            child.observe(value, {EXEMPLAR_LABEL: trace_id})
        else:
            child.observe(value)
            self.exemplars.record(hist, labels, value, trace_id)

    def collector(self) -> CollectorRegistry:
        """The registry a scrape reads: ours, or in multiprocess mode all workers' files merged."""
        if self.registry is not None:
            return self.registry
        assert self.multiproc_dir is not None
        if self.exemplars is not None:
            self.exemplars.flush()
        reg = CollectorRegistry()
        reg.register(MultiProcessExemplarCollector(self.multiproc_dir))
        reg.register(_BuildInfoCollector())
        return reg

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition for a scrape with this `Accept` header: (body, content type).

        OpenMetrics (with exemplars) when the scraper accepts it, else the plain text format."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.collector()), content_type

    def close(self) -> None:
        if self.exemplars is not None:
            self.exemplars.flush()


class _BuildInfoCollector(Collector):
    """`agent_proxy_build_info{version}`: a custom collector, because `Info` does not work in
    multiprocess mode."""

    def __init__(self) -> None:
        self._version = package_version()

    def collect(self) -> Iterator[Metric]:
        yield InfoMetricFamily(
            "agent_proxy_build", "Build of the running proxy.", value={"version": self._version}
        )
