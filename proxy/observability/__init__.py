"""Metrics, traces and logs of the event stream (docs/monitoring.md): what the app wires in.

Start-up: `configure_logging(...)`, then `telemetry = Telemetry(settings, agents, models)`: its
`observer` for the transports, `instrumentation_settings()` for the agents, `render_metrics(accept)`
for `GET /metrics`, `shutdown()` at exit. (`build_observer`, `render_metrics`, ... at module level do
the same for one app per process.) Multi-process servers: `prepare_multiprocess_dir()` in the
parent before starting the workers, `worker_exited(pid)` when one ends.

The names load lazily: `transports/pump.py` imports `observer` from this package and must not pull
in pydantic-ai, OpenTelemetry and prometheus-client with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from proxy.observability.multiprocess import prepare_multiprocess_dir, worker_exited
    from proxy.observability.runtime import (
        Telemetry,
        build_observer,
        instrumentation_settings,
        render_metrics,
        shutdown,
    )
    from proxy.observability.settings import ObservabilitySettings
    from proxy.observability.stream_log import configure_logging

_EXPORTS = {
    "ObservabilitySettings": "proxy.observability.settings",
    "Telemetry": "proxy.observability.runtime",
    "build_observer": "proxy.observability.runtime",
    "configure_logging": "proxy.observability.stream_log",
    "instrumentation_settings": "proxy.observability.runtime",
    "prepare_multiprocess_dir": "proxy.observability.multiprocess",
    "render_metrics": "proxy.observability.runtime",
    "shutdown": "proxy.observability.runtime",
    "worker_exited": "proxy.observability.multiprocess",
}
__all__ = [
    "ObservabilitySettings",
    "Telemetry",
    "build_observer",
    "configure_logging",
    "instrumentation_settings",
    "prepare_multiprocess_dir",
    "render_metrics",
    "shutdown",
    "worker_exited",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
