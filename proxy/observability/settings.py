"""The `[observability]` section of the config: logging, tracing switches and the latency SLOs.

Everything else about telemetry comes from the standard environment variables: OpenTelemetry's
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_SERVICE_NAME`, ...) and
prometheus-client's `PROMETHEUS_MULTIPROC_DIR`, so that operators configure them as they do
everywhere else.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ObservabilitySettings(BaseModel):
    """Telemetry switches. Defaults are safe for production: no prompt or completion text anywhere.

    `include_content` is off by default because traces leave the process and are often kept longer,
    and seen by more people, than the conversations themselves. `tracing = "on"` records spans even
    without an OTLP endpoint: they are exported nowhere, but their trace ids still appear in the stream
    log and as exemplars. `slo_ttft_s` is added to the TTFT histogram's bucket edges (if it is not one
    already) so that `histogram_quantile` answers exactly at the threshold; the recording rule
    `agent_proxy:slo_ttft_seconds` in `deploy/prometheus/rules/` must hold the same value.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    include_content: bool = False
    """Record prompt and completion text in pydantic-ai's spans (off: never in traces)."""
    tracing: Literal["auto", "on", "off"] = "auto"
    """Record spans: `auto` when an OTLP endpoint is set in the environment, `on` always, `off` never."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Level of the root logger (the stream log is at INFO)."""
    log_format: Literal["auto", "json", "text"] = "auto"
    """Log lines on stderr: `json` objects, `text` with `key=value` fields, or `auto`: text on a terminal."""
    stream_log: bool = True
    """One structured line per finished stream (logger `agent_proxy.stream`)."""
    slo_ttft_s: float = Field(default=2.5, gt=0)
    """Time-to-first-token objective, made a bucket edge; keep `agent_proxy:slo_ttft_seconds` equal."""
    slo_inter_token_s: float = Field(default=0.25, gt=0)
    """Inter-token gap objective, made a bucket edge of that histogram."""
