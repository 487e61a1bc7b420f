"""OpenTelemetry traces: one TracerProvider, a span per stream and per attempt, pydantic-ai's spans below.

The trace of a stream is `agent_proxy.stream` (continuing an incoming W3C `traceparent`) → one
`agent_proxy.attempt` per upstream attempt → pydantic-ai's GenAI spans (`invoke_agent`,
`chat {model}`, `execute_tool`). The attempt span is made the current context when the engine reports
`AttemptStarted`, in the task that drives the engine, just before the engine enters pydantic-ai's
run; the run's background task copies that context, so its spans become children of the attempt.

Spans are exported over OTLP/HTTP only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; the exporter reads its other settings (headers,
timeout, compression) from the standard OTEL_* variables too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import Token
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from proxy.events import (
    AttemptFinished,
    AttemptStarted,
    CircuitChanged,
    End,
    Error,
    Event,
    Fallback,
    Retry,
    Start,
)
from proxy.observability.metrics import package_version
from proxy.observability.observer import StreamContext, StreamOutcome

if TYPE_CHECKING:
    from pydantic_ai import InstrumentationSettings

DEFAULT_SERVICE_NAME: Final = "agent-proxy"
SCOPE: Final = "agent_proxy"
STREAM_SPAN: Final = "agent_proxy.stream"
ATTEMPT_SPAN: Final = "agent_proxy.attempt"

# Our span attribute names, in one place (the GenAI conventions are still moving; ours are ours).
ATTR_AGENT: Final = "agent_proxy.agent"
ATTR_TRANSPORT: Final = "agent_proxy.transport"
ATTR_KEY: Final = "agent_proxy.key"
ATTR_STREAM_ID: Final = "agent_proxy.stream_id"
ATTR_MODEL: Final = "agent_proxy.model"
ATTR_ATTEMPTS: Final = "agent_proxy.attempts"
ATTR_ATTEMPT: Final = "agent_proxy.attempt"
ATTR_OUTCOME: Final = "agent_proxy.outcome"
ATTR_REASON: Final = "agent_proxy.reason"
ATTR_ERROR_CODE: Final = "agent_proxy.error_code"
ATTR_TTFT: Final = "agent_proxy.ttft_s"
ATTR_INPUT_TOKENS: Final = "agent_proxy.usage.input_tokens"
ATTR_OUTPUT_TOKENS: Final = "agent_proxy.usage.output_tokens"
ATTR_ERROR_TYPE: Final = "error.type"

_STATE_KEY: Final = "tracing"
_FAILED_OUTCOMES: Final = frozenset({"error", "timeout"})
_propagator = TraceContextTextMapPropagator()


def otlp_endpoint_configured() -> bool:
    """True when the environment names an OTLP traces endpoint."""
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def build_resource() -> Resource:
    """`service.name` from `OTEL_SERVICE_NAME` (or `OTEL_RESOURCE_ATTRIBUTES`), else `agent-proxy`."""
    resource = Resource.create({SERVICE_VERSION: package_version()})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


def build_tracer_provider(exporter: SpanExporter | None = None) -> TracerProvider:
    """The process's TracerProvider: batch-exports to `exporter`, or to OTLP/HTTP when the
    environment names an endpoint, or nowhere."""
    provider = TracerProvider(resource=build_resource())
    if exporter is None and otlp_endpoint_configured():
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class Tracing:
    """One TracerProvider and what hangs off it: the stream observer and pydantic-ai's settings."""

    def __init__(self, provider: TracerProvider, *, include_content: bool = False) -> None:
        self.provider = provider
        self.include_content = include_content

    def observer(self) -> TracingObserver:
        return TracingObserver(self.provider)

    def instrumentation_settings(self) -> InstrumentationSettings:
        """For `Agent(..., capabilities=[Instrumentation(settings=...)])`: pydantic-ai's spans go
        through our provider, without prompt or completion text unless `include_content`."""
        from pydantic_ai import InstrumentationSettings

        return InstrumentationSettings(
            tracer_provider=self.provider,
            include_content=self.include_content,
            include_binary_content=self.include_content,
        )

    def set_global(self) -> bool:
        """Make our provider the OTel global (once per process); False if another one already is."""
        if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            return False
        trace.set_tracer_provider(self.provider)
        return True

    def shutdown(self) -> None:
        """Flush what is queued for export, then stop the exporter."""
        self.provider.force_flush()
        self.provider.shutdown()


class _StreamTrace:
    __slots__ = ("attempt_span", "attempt_token", "attempts", "span", "token")

    def __init__(self, span: Span, token: Token[otel_context.Context]) -> None:
        self.span = span
        self.token = token
        self.attempt_span: Span | None = None
        self.attempt_token: Token[otel_context.Context] | None = None
        self.attempts = 0


class TracingObserver:
    """Makes the stream and attempt spans from the event stream (an `Observer`).

    It sets `ctx.trace_id` when the stream starts, for the metrics (exemplars) and the stream log."""

    sees_deltas = False
    """It records nothing per chunk."""

    def __init__(self, provider: trace.TracerProvider) -> None:
        self._tracer = provider.get_tracer(SCOPE, package_version())

    def stream_started(self, ctx: StreamContext) -> None:
        parent = _extract(ctx.trace_headers)
        span = self._tracer.start_span(
            STREAM_SPAN,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                ATTR_AGENT: ctx.agent,
                ATTR_TRANSPORT: ctx.transport,
                ATTR_KEY: ctx.key,
                ATTR_STREAM_ID: ctx.stream_id,
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        ctx.state[_STATE_KEY] = _StreamTrace(span, token)
        sc = span.get_span_context()
        if sc.is_valid and sc.trace_flags.sampled:
            ctx.trace_id = format(sc.trace_id, "032x")

    def event_sent(self, ctx: StreamContext, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(self, ctx.state[_STATE_KEY], event)

    def stream_finished(self, ctx: StreamContext, outcome: StreamOutcome, end: End | None) -> None:
        st: _StreamTrace = ctx.state.pop(_STATE_KEY)
        if st.attempt_span is not None:
            st.attempt_span.set_attribute(ATTR_OUTCOME, "cancelled")
            self._end_attempt(st)
        span = st.span
        span.set_attribute(ATTR_OUTCOME, outcome)
        span.set_attribute(ATTR_ATTEMPTS, end.attempts if end is not None else st.attempts)
        if outcome in _FAILED_OUTCOMES:
            span.set_status(Status(StatusCode.ERROR, outcome))
        otel_context.detach(st.token)
        span.end()

    def _on_start(self, st: _StreamTrace, event: Start) -> None:
        st.span.set_attribute(ATTR_MODEL, event.model)

    def _on_attempt_started(self, st: _StreamTrace, event: AttemptStarted) -> None:
        if st.attempt_span is not None:  # the engine skipped AttemptFinished; close it anyway
            self._end_attempt(st)
        st.attempts += 1
        parent = trace.set_span_in_context(st.span)
        span = self._tracer.start_span(
            ATTEMPT_SPAN,
            context=parent,
            attributes={ATTR_AGENT: event.agent, ATTR_MODEL: event.model, ATTR_ATTEMPT: event.attempt},
        )
        st.attempt_span = span
        st.attempt_token = otel_context.attach(trace.set_span_in_context(span, parent))

    def _on_attempt_finished(self, st: _StreamTrace, event: AttemptFinished) -> None:
        span = st.attempt_span
        if span is None:
            return
        span.set_attribute(ATTR_OUTCOME, event.outcome)
        if event.error_type is not None:
            span.set_attribute(ATTR_ERROR_TYPE, event.error_type)
        if event.reason is not None:
            span.set_attribute(ATTR_REASON, event.reason)
        if event.outcome == "error":
            span.set_status(Status(StatusCode.ERROR, event.error_type or event.reason))
        self._end_attempt(st)

    def _end_attempt(self, st: _StreamTrace) -> None:
        assert st.attempt_span is not None
        assert st.attempt_token is not None
        otel_context.detach(st.attempt_token)
        st.attempt_span.end()
        st.attempt_span = None
        st.attempt_token = None

    def _on_retry(self, st: _StreamTrace, event: Retry) -> None:
        st.span.add_event(
            "retry",
            {
                ATTR_ATTEMPT: event.attempt,
                "agent_proxy.max_attempts": event.max_attempts,
                ATTR_REASON: event.reason,
                "agent_proxy.delay_s": event.delay_s,
                "agent_proxy.discard": event.discard,
            },
        )

    def _on_fallback(self, st: _StreamTrace, event: Fallback) -> None:
        st.span.add_event(
            "fallback",
            {"agent_proxy.from_model": event.from_model, ATTR_MODEL: event.model, ATTR_REASON: event.reason},
        )

    def _on_circuit_changed(self, st: _StreamTrace, event: CircuitChanged) -> None:
        st.span.add_event(
            "circuit_changed", {ATTR_MODEL: event.model, "agent_proxy.circuit_state": event.state}
        )

    def _on_error(self, st: _StreamTrace, event: Error) -> None:
        st.span.set_attribute(ATTR_ERROR_CODE, event.code)
        st.span.set_status(Status(StatusCode.ERROR, event.code))

    def _on_end(self, st: _StreamTrace, event: End) -> None:
        if event.ttft_s is not None:
            st.span.set_attribute(ATTR_TTFT, event.ttft_s)
        st.span.set_attribute(ATTR_INPUT_TOKENS, event.usage.input_tokens)
        st.span.set_attribute(ATTR_OUTPUT_TOKENS, event.usage.output_tokens)

    _handlers: Final[dict[type[Event], Any]] = {
        Start: _on_start,
        AttemptStarted: _on_attempt_started,
        AttemptFinished: _on_attempt_finished,
        Retry: _on_retry,
        Fallback: _on_fallback,
        CircuitChanged: _on_circuit_changed,
        Error: _on_error,
        End: _on_end,
    }


def _extract(headers: Mapping[str, str]) -> otel_context.Context | None:
    if not headers:
        return None
    carrier = {k.lower(): v for k, v in headers.items()}
    if "traceparent" not in carrier:
        return None
    return _propagator.extract(carrier, context=otel_context.Context())
