"""docs/monitoring.md names what the code has: metrics, panels, rules, settings, stream log fields."""

from __future__ import annotations

import logging
import re

import pytest
from prometheus_client.metrics import MetricWrapperBase

from proxy.log_fields import FIELDS_ATTR
from proxy.observability.metrics import ProxyMetrics
from proxy.observability.observer import Observers
from proxy.observability.settings import ObservabilitySettings
from proxy.observability.stream_log import LogObserver

from .conftest import ROOT, Script, drive
from .test_dashboard import load as load_dashboard
from .test_dashboard import panels

DOC = (ROOT / "docs" / "monitoring.md").read_text()
RULES = "\n".join(p.read_text() for p in (ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))


def code_names(text: str) -> set[str]:
    return set(re.findall(r"`([^`\n]+)`", text))


def test_every_metric_is_documented_with_its_labels() -> None:
    m = ProxyMetrics(["demo"], ["mock:fast"])
    assert m.registry is not None
    rows = {row[0]: row for row in re.findall(r"^\| `(agent_proxy_\w+)` \| ([^|]+) \| ([^|]*) \|", DOC, re.M)}
    metrics = [v for part in (m, m.loop) for v in vars(part).values() if isinstance(v, MetricWrapperBase)]
    exported = {family.name for family in m.registry.collect()}
    assert {x._name for x in metrics} | {"agent_proxy_build"} == exported
    for metric in metrics:
        name = metric._name + ("_total" if metric._type == "counter" else "")
        assert name in rows, name
        documented = {label.strip() for label in rows[name][2].split(",") if label.strip()}
        assert documented == set(metric._labelnames), (name, documented)
        assert rows[name][1].strip() == metric._type, name
    assert rows["agent_proxy_build_info"][2].strip() == "version"
    assert len(rows) == len(metrics) + 1


def test_every_panel_alert_and_recording_rule_is_documented() -> None:
    for panel in panels(load_dashboard()):
        if panel["type"] != "row":
            assert f"| {panel['title']} |" in DOC, panel["title"]
    names = code_names(DOC)
    for name in re.findall(r"^\s*- (?:record|alert): ([\w:]+)", RULES, re.M):
        assert name in names, name


def test_every_setting_is_documented() -> None:
    names = code_names(DOC)
    for field in ObservabilitySettings.model_fields:
        assert field in names or f"{field} = " in DOC or f"[observability] {field}" in DOC, field


async def test_every_stream_log_field_is_documented(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agent_proxy.stream")
    await drive(Observers([LogObserver()]), Script().ok())
    (record,) = caplog.records
    fields = {"ts", "level", "logger", "pid", "message", *getattr(record, FIELDS_ATTR)}
    table = DOC[DOC.index("## Logs") :]
    documented = {n for row in re.findall(r"^\| ([^|]+) \|", table, re.M) for n in code_names(row)}
    assert fields <= documented, fields - documented
