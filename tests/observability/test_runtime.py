"""What app.py wires: settings validation and one `Telemetry` per app."""

from __future__ import annotations

import pydantic
import pytest

from proxy.observability import ObservabilitySettings, Telemetry
from proxy.observability.metrics_observer import MetricsObserver
from proxy.observability.stream_log import LogObserver

from .conftest import Script, drive


def test_settings_defaults_keep_content_out_and_reject_typos() -> None:
    s = ObservabilitySettings()
    assert s.include_content is False
    assert s.tracing == "auto"
    with pytest.raises(pydantic.ValidationError):
        ObservabilitySettings.model_validate({"include_contents": True})
    with pytest.raises(pydantic.ValidationError):
        ObservabilitySettings(slo_ttft_s=0)


async def test_each_app_has_its_own_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    one = Telemetry(ObservabilitySettings(), ["demo"], ["mock:fast"])
    two = Telemetry(ObservabilitySettings(stream_log=False, slo_ttft_s=3.0), ["other-agent"], ["mock:fast"])
    assert one.instrumentation_settings() is None  # tracing "auto" without an endpoint: off
    assert [type(o) for o in one.observer._observers] == [MetricsObserver, LogObserver]
    assert [type(o) for o in two.observer._observers] == [MetricsObserver]

    await drive(one.observer, Script().ok())
    body_one, _ = one.render_metrics(None)
    body_two, _ = two.render_metrics(None)
    series = b'agent_proxy_requests_total{agent="demo",key="anonymous",outcome="stop",transport="sse"}'
    assert series + b" 1.0" in body_one
    assert b'agent="demo"' not in body_two
    assert 3.0 in two.metrics.ttft._upper_bounds
    assert 3.0 not in one.metrics.ttft._upper_bounds
    one.shutdown()
    two.shutdown()
