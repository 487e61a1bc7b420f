"""The Prometheus side: scrape config, alert and recording rules, and their promtool unit tests."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .conftest import ROOT

PROM = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
TEST_FILES = sorted((PROM / "tests").glob("*.yml"))


def test_rule_files_are_valid(promtool: Callable[..., Any]) -> None:
    assert RULE_FILES
    result = promtool("check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_scrape_config_is_valid(promtool: Callable[..., Any]) -> None:
    result = promtool("check", "config", str(PROM / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass(promtool: Callable[..., Any]) -> None:
    assert TEST_FILES
    for test_file in TEST_FILES:
        result = promtool("test", "rules", str(test_file.relative_to(ROOT)))
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_pending_firing_and_resolved() -> None:
    alerts = {a for f in RULE_FILES for a in re.findall(r"^\s*- alert: (\w+)", f.read_text(), re.M)}
    assert alerts == {
        "AgentProxyHighErrorRatio", "AgentProxyTTFTAboveSLO", "AgentProxyRetryStorm", "AgentProxyCircuitOpen",
        "AgentProxyNoTraffic", "AgentProxyStateErrors", "AgentProxyKeyAtLimit", "AgentProxyEventLoopLagging",
    }  # fmt: skip
    tests = "\n".join(f.read_text() for f in TEST_FILES)
    for alert in alerts:
        checks = re.findall(rf"alertname: {alert}\n\s+eval_time: (\w+)\n\s+exp_alerts:(.*)", tests)
        kinds = ["quiet" if rest.strip() == "[]" else "firing" for _, rest in checks]
        assert "firing" in kinds, alert
        assert kinds.index("firing") < len(kinds) - 1, f"{alert}: no resolved check after firing"
        assert kinds[-1] == "quiet", alert
        assert f'alertname="{alert}", alertstate="pending"' in tests, f"{alert}: no pending check"
