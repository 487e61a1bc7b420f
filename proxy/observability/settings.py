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
    """Telemetry switches. Defaults are safe for production: no prompt or completion text anywhere."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    include_content: bool = False
    """Record prompt and completion text in pydantic-ai's spans. Off by default: traces leave the
    process and are often kept longer and seen by more people than the conversations themselves."""

    tracing: Literal["auto", "on", "off"] = "auto"
    """`auto`: record spans when an OTLP endpoint is configured (`OTEL_EXPORTER_OTLP_ENDPOINT` or
    `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), else none. `on`: always record them (exported only when an
    endpoint is set; trace ids still appear in logs and exemplars). `off`: never."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    stream_log: bool = True
    """One structured line per finished stream (logger `agent_proxy.stream`)."""

    slo_ttft_s: float = Field(default=2.5, gt=0)
    """Time-to-first-token objective. Added to the TTFT histogram's bucket edges (if it is not one
    already) so that `histogram_quantile` answers exactly at the threshold; the alert rule in
    `deploy/prometheus/rules/` must use the same value."""

    slo_inter_token_s: float = Field(default=0.25, gt=0)
    """Inter-token gap objective, added to that histogram's bucket edges the same way."""
