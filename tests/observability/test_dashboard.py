"""The Grafana dashboard: structure, variables, rows, and every panel query valid PromQL over our metrics."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.observability.metrics import ProxyMetrics

from .conftest import ROOT

DASHBOARD = ROOT / "dashboards" / "agent-proxy.json"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$agent": ".*",
    "$key": ".*",
    "$model": ".*",
    "$transport": ".*",
}
PROMQL_WORDS = {
    "sum", "by", "rate", "histogram_quantile", "max", "count", "ignoring", "group_left", "le", "on", "and",
    "or", "without", "increase", "bool",
}  # fmt: skip


SUFFIXES = {
    "counter": ["_total"],
    "histogram": ["_bucket", "_count", "_sum"],
    "info": ["_info"],
    "gauge": [""],
}
# Which metrics carry the label of each dashboard variable (by name prefix after `agent_proxy_`).
CARRIERS = {
    "agent": ("requests", "time_to_first", "inter_token", "request_duration", "retries", "fallbacks",
              "upstream", "tokens"),
    "model": ("time_to_first", "inter_token", "retries", "fallbacks", "upstream", "tokens", "circuit"),
    "transport": ("requests", "time_to_first", "request_duration", "active_streams", "heartbeats",
                  "client_disconnects"),
    "key": ("requests", "tokens", "rate_limited"),
}  # fmt: skip


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in panels(dashboard) for t in p.get("targets", [])]


def substitute(expr: str) -> str:
    for var, value in sorted(VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(var, value)
    assert "$" not in expr, expr
    return expr


def exported_names() -> set[str]:
    """Every series name our exposition can hold (histograms with their suffixes)."""
    m = ProxyMetrics(["demo"], ["mock:fast"])
    assert m.registry is not None
    names = set()
    for family in m.registry.collect():
        names.add(family.name)
        suffixes = SUFFIXES[family.type]
        names.update(family.name + s for s in suffixes)
    return names


def test_dashboard_shape() -> None:
    d = load()
    assert d["schemaVersion"] in (41, 42)
    assert d["uid"] == "agent-proxy"
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("agent", "model", "transport", "key"):
        assert variables[name]["type"] == "query"
        assert variables[name]["includeAll"]
        assert variables[name]["multi"]
    rows = [p["title"] for p in d["panels"] if p["type"] == "row"]
    assert rows == [
        "Traffic", "Latency", "Errors and resilience", "Tokens", "Connection health", "Key $key",
        "Shared state and resumption", "Proxy load",
    ]  # fmt: skip
    ids = [p["id"] for p in panels(d)]
    assert len(ids) == len(set(ids))
    for p in panels(d):
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
            assert p["targets"], p["title"]
            assert p.get("description"), p["title"]
            for t in p["targets"]:
                assert t["datasource"] == p["datasource"]


def test_dashboard_covers_what_the_issue_asks() -> None:
    titles = {p["title"] for p in panels(load())}
    for wanted in (
        "Requests per second by agent and transport", "Active streams", "Time to first token p50 / p95 / p99",
        "Inter-token gap p50 / p99", "Stream duration p50 / p95 / p99", "Error ratio by outcome",
        "Retries per second by reason", "Fallbacks per second", "Circuit state",
        "Upstream errors per second by type", "Tokens per second, input and output", "Heartbeats per second",
        "Client disconnects per second", "Requests per second of the key", "Tokens per second of the key",
        "Rate-limited requests per second of the key",
    ):  # fmt: skip
        assert wanted in titles


def test_panels_with_a_label_honour_its_variable() -> None:
    for title, expr in exprs(load()):
        for metric, selector in re.findall(r"agent_proxy_(\w+)\{([^}]*)\}", expr):
            for var, prefixes in CARRIERS.items():
                if metric.startswith(prefixes):
                    assert f'{var}=~"${var}"' in selector, (title, metric, var)


def test_every_panel_query_is_valid_promql(tmp_path: Path, promtool: Callable[..., Any]) -> None:
    rules = [
        {"record": f"dashboard:panel_{i}", "expr": substitute(e)} for i, (_, e) in enumerate(exprs(load()))
    ]
    for v in load()["templating"]["list"]:
        if v["type"] == "query":
            rules.append(
                {"record": f"dashboard:var_{v['name']}", "expr": label_values_selector(v["definition"])}
            )
    rule_file = tmp_path / "dashboard-rules.yml"
    rule_file.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))  # JSON is YAML
    result = promtool("check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr


def label_values_selector(definition: str) -> str:
    match = re.fullmatch(r"label_values\((.+), (\w+)\)", definition)
    assert match, definition
    return substitute(match.group(1))


def test_every_metric_a_query_names_is_exported() -> None:
    names = exported_names()
    rules = "\n".join(p.read_text() for p in (ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
    recorded = set(re.findall(r"record: ([\w:]+)", rules))
    queries = [e for _, e in exprs(load())] + [v["definition"] for v in load()["templating"]["list"] if
                                                 v["type"] == "query"]  # fmt: skip
    queries += re.findall(r"expr: (.*)", rules)
    used = {w for q in queries for w in re.findall(r"\b(agent_proxy[\w:]*|up)\b(?!\s*=)", q)}
    unknown = used - names - recorded - {"up"}
    assert unknown == set()


@pytest.mark.parametrize("path", sorted(PROVISIONING.glob("*/*.yaml")), ids=lambda p: p.parent.name)
def test_provisioning_files_exist_with_api_version(path: Path) -> None:
    text = path.read_text()
    assert text.count("apiVersion: 1") == 1
    assert ("providers:" if path.parent.name == "dashboards" else "datasources:") in text
