"""The recorders of `ProxyMetrics`: `MetricsObserver`, the one observer that turns the events
`transports/pump.py` reports into observations, and `StateMetricsRecorder` for the state backend's
operations."""

from __future__ import annotations

import time
from typing import Any, Final

from proxy.events import (
    AttemptFinished,
    AttemptStarted,
    CircuitChanged,
    Delta,
    End,
    Event,
    Fallback,
    Heartbeat,
    Output,
    Retry,
    Start,
)
from proxy.observability.histogram_batch import HistogramBatch
from proxy.observability.metrics import OTHER, RESUME_OUTCOMES, STATE_OPS, ProxyMetrics
from proxy.observability.observer import StreamContext, StreamOutcome, Transport

_STATE_KEY: Final = "metrics"


class StateMetricsRecorder:
    """`proxy.engine.shared.StateMetrics` on these metrics; op and outcome labels are bounded."""

    def __init__(self, metrics: ProxyMetrics) -> None:
        self.m = metrics

    def resumed(self, outcome: str) -> None:
        self.m.resumes.labels(outcome if outcome in RESUME_OUTCOMES else OTHER).inc()

    def took_over(self) -> None:
        self.m.takeovers.inc()

    def state_error(self, op: str) -> None:
        self.m.state_errors.labels(op if op in STATE_OPS else OTHER).inc()

    def state_latency(self, op: str, seconds: float) -> None:
        self.m.state_latency.labels(op if op in STATE_OPS else OTHER).observe(seconds)


class _StreamMetrics:
    """Per-stream cache of labelled children, so that a delta costs a dict lookup and a local count."""

    __slots__ = (
        "agent", "attempt_open", "failed_model", "itl", "key", "model", "prev_content_at", "transport",
        "ttft_done",
    )  # fmt: skip

    def __init__(self, agent: str, transport: Transport, key: str) -> None:
        self.agent = agent
        self.transport = transport
        self.key = key
        self.model = OTHER
        self.itl: HistogramBatch | None = None
        self.prev_content_at: float | None = None
        self.ttft_done = False
        self.failed_model: str | None = None
        self.attempt_open = False


class MetricsObserver:
    """Records docs/monitoring.md's metrics from the event stream (an `Observer`)."""

    def __init__(self, metrics: ProxyMetrics) -> None:
        self.m = metrics

    def stream_started(self, ctx: StreamContext) -> None:
        st = _StreamMetrics(self.m.agent_label(ctx.agent), ctx.transport, self.m.key_label(ctx.key))
        ctx.state[_STATE_KEY] = st
        self.m.transport_children[ctx.transport][0].inc()

    def event_sent(self, ctx: StreamContext, event: Event) -> None:
        t = type(event)
        if t is Delta or t is Output:
            st: _StreamMetrics = ctx.state[_STATE_KEY]
            now = ctx.last_content_at
            prev = st.prev_content_at
            st.prev_content_at = now
            if prev is not None and now is not None:
                if st.itl is None:
                    st.itl = HistogramBatch(self.m.inter_token.labels(st.agent, st.model))
                st.itl.observe(now - prev, now)
            elif not st.ttft_done and ctx.first_content_at is not None:
                st.ttft_done = True
                labels = (st.agent, st.model, st.transport)
                self.m.observe_with_exemplar(
                    self.m.ttft,
                    labels,
                    self.m.ttft.labels(*labels),
                    ctx.first_content_at - ctx.arrived_at,
                    ctx.trace_id,
                )
        elif t is Heartbeat:
            self.m.transport_children[ctx.transport][1].inc()
        else:
            handler = self._handlers.get(t)
            if handler is not None:
                handler(self, ctx.state[_STATE_KEY], event)

    def stream_finished(self, ctx: StreamContext, outcome: StreamOutcome, end: End | None) -> None:
        st: _StreamMetrics = ctx.state[_STATE_KEY]
        if st.itl is not None:
            st.itl.flush()
        m = self.m
        children = m.transport_children[ctx.transport]
        children[0].dec()
        if outcome == "client_disconnect":
            children[2].inc()
        m.requests.labels(st.agent, st.transport, outcome, st.key).inc()
        if st.attempt_open:  # the client went away mid-attempt: the engine never reports its end
            m.attempts.labels(st.agent, st.model, "cancelled").inc()
        labels = (st.agent, st.transport)
        m.observe_with_exemplar(
            m.duration,
            labels,
            m.duration.labels(*labels),
            time.monotonic() - ctx.arrived_at,
            ctx.trace_id,
        )
        if end is not None:
            usage = end.usage
            if usage.input_tokens:
                m.tokens.labels(st.agent, st.model, "input", st.key).inc(usage.input_tokens)
            if usage.output_tokens:
                m.tokens.labels(st.agent, st.model, "output", st.key).inc(usage.output_tokens)

    # Rare events: one dispatch through a dict keyed by event type.

    def _on_start(self, st: _StreamMetrics, event: Start) -> None:
        self._set_model(st, event.model)

    def _on_attempt_started(self, st: _StreamMetrics, event: AttemptStarted) -> None:
        self._set_model(st, event.model)
        st.attempt_open = True
        st.prev_content_at = None  # the first chunk of an attempt is no inter-token gap

    def _on_attempt_finished(self, st: _StreamMetrics, event: AttemptFinished) -> None:
        model = self.m.model_label(event.model)
        st.attempt_open = False
        self.m.attempts.labels(st.agent, model, event.outcome).inc()
        st.failed_model = model if event.outcome != "success" else None
        if event.error_type is not None:
            self.m.upstream_errors.labels(st.agent, model, self.m.error_type_label(event.error_type)).inc()

    def _on_retry(self, st: _StreamMetrics, event: Retry) -> None:
        # Counted against the model whose attempt failed (a retry after a fallback runs on the next).
        model = st.failed_model or st.model
        self.m.retries.labels(st.agent, model, self.m.reason_label(event.reason)).inc()

    def _on_fallback(self, st: _StreamMetrics, event: Fallback) -> None:
        self.m.fallbacks.labels(st.agent, self.m.model_label(event.from_model)).inc()
        self._set_model(st, event.model)

    def _on_circuit_changed(self, st: _StreamMetrics, event: CircuitChanged) -> None:
        self.m.circuit_open.labels(self.m.model_label(event.model)).set(0 if event.state == "closed" else 1)

    def _set_model(self, st: _StreamMetrics, model: str) -> None:
        label = self.m.model_label(model)
        if label != st.model:
            st.model = label
            if st.itl is not None:
                st.itl.flush()
            st.itl = None

    _handlers: Final[dict[type[Event], Any]] = {
        Start: _on_start,
        AttemptStarted: _on_attempt_started,
        AttemptFinished: _on_attempt_finished,
        Retry: _on_retry,
        Fallback: _on_fallback,
        CircuitChanged: _on_circuit_changed,
    }
