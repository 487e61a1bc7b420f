"""Metrics, traces and logs of the event stream (DESIGN section 5): what the app wires in.

Start-up: `configure_logging(...)`, then `observer = build_observer(settings, agents, models)` and
`instrumentation_settings()` for the agents; `GET /metrics`: `render_metrics(accept)`; exit:
`shutdown()`. Multi-process servers: `prepare_multiprocess_dir()` in the parent before starting the
workers, `worker_exited(pid)` when one ends.

The names load lazily: `transports/pump.py` imports `observer` from this package and must not pull
in pydantic-ai, OpenTelemetry and prometheus-client with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from proxy.observability.metrics import prepare_multiprocess_dir, worker_exited
    from proxy.observability.runtime import (
        build_observer,
        instrumentation_settings,
        render_metrics,
        shutdown,
    )
    from proxy.observability.settings import ObservabilitySettings
    from proxy.observability.stream_log import configure_logging

_EXPORTS = {
    "ObservabilitySettings": "proxy.observability.settings",
    "build_observer": "proxy.observability.runtime",
    "configure_logging": "proxy.observability.stream_log",
    "instrumentation_settings": "proxy.observability.runtime",
    "prepare_multiprocess_dir": "proxy.observability.metrics",
    "render_metrics": "proxy.observability.runtime",
    "shutdown": "proxy.observability.runtime",
    "worker_exited": "proxy.observability.metrics",
}
__all__ = [
    "ObservabilitySettings",
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
