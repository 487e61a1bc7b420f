"""The process's telemetry, put together from `ObservabilitySettings`: what app.py calls.

`Telemetry` holds one app's pieces: the observer for `pump` (tracing first: it provides the trace id
to the metrics and the stream log), the metrics exposition, pydantic-ai's instrumentation settings,
and `shutdown`. An app keeps its own `Telemetry` (tests start several apps in one process); the
module-level functions serve the simple case of one app per process.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from proxy.observability.metrics import ProxyMetrics
from proxy.observability.metrics_observer import MetricsObserver, StateMetricsRecorder
from proxy.observability.observer import ANONYMOUS_KEY, Observer, Observers
from proxy.observability.settings import ObservabilitySettings
from proxy.observability.stream_log import LogObserver
from proxy.observability.tracing import Tracing, build_tracer_provider, otlp_endpoint_configured

if TYPE_CHECKING:
    from pydantic_ai import InstrumentationSettings

_log = logging.getLogger(__name__)


def tracing_enabled(settings: ObservabilitySettings) -> bool:
    if settings.tracing == "auto":
        return otlp_endpoint_configured()
    return settings.tracing == "on"


class Telemetry:
    """Metrics, traces and the stream log of one app.

    `agents` and `models` are the configured names: the only values the agent and model labels
    take; `keys` the key names shown from the start (at most `max_keys` names in all). In a worker
    of a multi-process server (`PROMETHEUS_MULTIPROC_DIR` set), metrics go to the shared directory
    and `render_metrics` shows all workers."""

    def __init__(
        self,
        settings: ObservabilitySettings,
        agents: Iterable[str],
        models: Iterable[str],
        keys: Iterable[str] = (ANONYMOUS_KEY,),
        max_keys: int = 100,
    ) -> None:
        self.metrics = ProxyMetrics(
            agents,
            models,
            slo_ttft_s=settings.slo_ttft_s,
            slo_inter_token_s=settings.slo_inter_token_s,
            keys=keys,
            max_keys=max_keys,
        )
        self.state_metrics = StateMetricsRecorder(self.metrics)
        self.tracing: Tracing | None = None
        observers: list[Observer] = []
        if tracing_enabled(settings):
            self.tracing = Tracing(build_tracer_provider(), include_content=settings.include_content)
            if not self.tracing.set_global():
                _log.debug("a global TracerProvider is already set; ours serves the proxy's spans")
            observers.append(self.tracing.observer())
        observers.append(MetricsObserver(self.metrics))
        if settings.stream_log:
            observers.append(LogObserver())
        self.observer = Observers(observers)

    def render_metrics(self, accept: str | None) -> tuple[bytes, str]:
        """`GET /metrics`: (body, content type) for the scraper's `Accept` header."""
        return self.metrics.render(accept)

    def instrumentation_settings(self) -> InstrumentationSettings | None:
        """pydantic-ai's settings for every agent, or None when tracing is off (then do not instrument)."""
        return self.tracing.instrumentation_settings() if self.tracing is not None else None

    def shutdown(self) -> None:
        """At exit, after the streams drained: flush queued spans and this worker's exemplars."""
        if self.tracing is not None:
            self.tracing.shutdown()
            self.tracing = None
        self.metrics.close()


_current: Telemetry | None = None


def build_observer(
    settings: ObservabilitySettings, agents: Iterable[str], models: Iterable[str]
) -> Observers:
    """Build this process's `Telemetry` (replacing an earlier one) and return its observer."""
    global _current
    shutdown()
    _current = Telemetry(settings, agents, models)
    return _current.observer


def current() -> Telemetry:
    if _current is None:
        raise RuntimeError("build_observer() was not called")
    return _current


def render_metrics(accept: str | None) -> tuple[bytes, str]:
    return current().render_metrics(accept)


def instrumentation_settings() -> InstrumentationSettings | None:
    return current().instrumentation_settings()


def shutdown() -> None:
    if _current is not None:
        _current.shutdown()
