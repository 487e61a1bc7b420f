"""deploy/compose.yaml: valid against the Compose Specification's JSON Schema, and wired the way the
rest of deploy/ expects (two replicas behind the shipped nginx config, the shipped Prometheus rules
and Grafana provisioning, a config the proxy loads, a drain that fits in the stop grace period)."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from proxy.config import load_settings

from .conftest import DEPLOY, NGINX_CONF, ROOT, as_deployed, require_tool

COMPOSE = DEPLOY / "compose.yaml"
SCHEMA = DEPLOY / "schemas" / "compose-spec.json"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def schema_errors(data: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft201909Validator(schema)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(data)]


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path (relative to deploy/, as compose resolves it) of each bind mount."""
    mounts: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        mounts[target] = (DEPLOY / source).resolve()
    return mounts


def proxies(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: s
        for name, s in data["services"].items()
        if s.get("build") and "entrypoint" not in s  # the image's own entry point: agent-proxy serve
    }


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    assert schema_errors(compose()) == []


def test_the_schema_check_catches_a_misspelt_key() -> None:
    data = compose()
    data["services"]["nginx"]["port"] = ["8080:8080"]
    assert any("port" in e for e in schema_errors(data))


def test_every_mounted_file_exists_and_the_proxy_config_loads() -> None:
    data = compose()
    for name, service in data["services"].items():
        for target, source in bind_mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"
    for secret in data["secrets"].values():
        assert (DEPLOY / secret["file"]).exists()
    for service in proxies(data).values():
        config = bind_mounts(service)[service["environment"]["AGENT_PROXY_CONFIG"]]
        with as_deployed():
            settings = load_settings(config)
        assert settings.server.host == "0.0.0.0"
        assert set(settings.agents) == {"assistant", "slow"}


def test_two_replicas_behind_the_shipped_nginx_config() -> None:
    data = compose()
    replicas = proxies(data)
    assert len(replicas) == 2
    nginx = data["services"]["nginx"]
    assert bind_mounts(nginx)["/etc/nginx/conf.d/default.conf"] == NGINX_CONF
    upstreams = re.findall(r"^\s*server\s+([\w.-]+):8080\b", NGINX_CONF.read_text(), re.MULTILINE)
    assert sorted(upstreams) == sorted(replicas)
    assert set(nginx["depends_on"]) == set(replicas)


def test_stop_grace_period_leaves_time_for_the_drain() -> None:
    for service in proxies(compose()).values():
        with as_deployed():
            drain = load_settings(DEPLOY / "agent-proxy.toml").server.drain_timeout_s
        grace = int(service["stop_grace_period"].removesuffix("s"))
        assert grace > drain, (grace, drain)


def test_auth_and_state_come_from_the_environment_with_a_keys_file_secret() -> None:
    data = compose()
    keys = tomllib.loads((DEPLOY / data["secrets"]["agent-proxy-keys"]["file"]).read_text())["keys"]
    assert keys and all(re.fullmatch(r"[0-9a-f]{64}", k["sha256"]) and k["name"] for k in keys)
    for service in proxies(data).values():
        env = service["environment"]
        assert env["AGENT_PROXY_AUTH__MODE"] == "keys"
        assert env["AGENT_PROXY_AUTH__KEYS_FILE"] == "/run/secrets/agent-proxy-keys"
        assert service["secrets"] == ["agent-proxy-keys"]
        assert env["AGENT_PROXY_STATE__BACKEND"] == "redis"
        assert env[env["AGENT_PROXY_STATE__REDIS_URL_ENV"]].startswith("redis://redis:")
        # One token secret for both replicas: a browser's token must hold on whichever it reaches.
        assert env[env["AGENT_PROXY_AUTH__TOKEN_SECRET_ENV"]]


def test_prometheus_scrapes_both_replicas_with_the_shipped_rules() -> None:
    data = compose()
    service = data["services"]["prometheus"]
    mounts = bind_mounts(service)
    assert mounts["/etc/prometheus/rules"] == DEPLOY / "prometheus" / "rules"
    config_arg = next(a for a in service["command"] if a.startswith("--config.file="))
    config_path = mounts[config_arg.split("=", 1)[1]]
    config = yaml.safe_load(config_path.read_text())
    targets = [t for job in config["scrape_configs"] for c in job["static_configs"] for t in c["targets"]]
    assert sorted(targets) == sorted(f"{name}:8080" for name in proxies(data))
    promtool = require_tool("promtool", "apt-get install --no-install-recommends prometheus")
    check = subprocess.run(
        [promtool, "check", "config", str(config_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 1 rule files found" in check.stdout + check.stderr


def test_grafana_gets_the_shipped_dashboard_and_datasource() -> None:
    mounts = bind_mounts(compose()["services"]["grafana"])
    assert mounts["/etc/grafana/provisioning"] == DEPLOY / "grafana" / "provisioning"
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/agent-proxy.yaml").read_text())
    dashboards = mounts[provider["providers"][0]["options"]["path"]]
    assert dashboards == ROOT / "dashboards"
    assert (dashboards / "agent-proxy.json").exists()
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    assert "prometheus" in compose()["services"]


@pytest.mark.parametrize("service", ["proxy-1", "mock-upstream"])
def test_services_of_the_image_run_with_a_read_only_root(service: str) -> None:
    assert compose()["services"][service]["read_only"] is True
