"""deploy/kubernetes: `kubectl kustomize` builds it; every object is valid for a pinned Kubernetes
version (kubernetes-validate's schemas, strict: unknown fields are errors) and the Prometheus
Operator's objects for its CRDs; the PrometheusRule is exactly what scripts/generate-prometheusrule.py
makes of deploy/prometheus/rules/; and the Deployment keeps the promises docs/deploy.md makes."""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.prometheus_operator import v1 as monitoring_v1
from pydantic import ValidationError

from proxy.config import Settings

from .conftest import DEPLOY, ROOT, as_deployed, require_tool

KUBERNETES = DEPLOY / "kubernetes"
KUBERNETES_VERSION = "1.32.0"
"""kubernetes-validate's schemas for the version of the kubectl this was written with (1.32)."""
GENERATOR = ROOT / "scripts" / "generate-prometheusrule.py"
CRDS = {"ServiceMonitor": monitoring_v1.ServiceMonitor, "PrometheusRule": monitoring_v1.PrometheusRule}


@functools.cache
def built(directory: Path = KUBERNETES) -> tuple[dict[str, Any], ...]:
    kubectl = require_tool("kubectl", "a Kubernetes apt repository's 'kubectl' package")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return tuple(yaml.safe_load_all(result.stdout))


def one(kind: str) -> dict[str, Any]:
    [obj] = [o for o in built() if o["kind"] == kind]
    return obj


def crd_problems(obj: dict[str, Any]) -> list[str]:
    """What the Prometheus Operator's CRD schema rejects in `obj`, unknown fields included (the
    models ignore those, so a field that does not survive the round trip is one)."""
    try:
        model = CRDS[obj["kind"]].model_validate(obj)
    except ValidationError as exc:
        return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    back = model.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return [] if back == obj else [f"fields the CRD does not know: {obj} != {back}"]


def test_every_object_is_valid_for_kubernetes_or_its_crd() -> None:
    kinds = sorted(o["kind"] for o in built())
    assert kinds == sorted(
        ["ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
         "NetworkPolicy", "ServiceMonitor", "PrometheusRule"]
    )  # fmt: skip
    for obj in built():
        if obj["kind"] in CRDS:
            assert crd_problems(obj) == [], obj["kind"]
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_checks_reject_unknown_fields() -> None:
    deployment = {**one("Deployment"), "spec": {**one("Deployment")["spec"], "replica": 3}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    monitor = one("ServiceMonitor")
    typo = {**monitor, "spec": {**monitor["spec"], "endpoints": [{"port": "http", "intervall": "15s"}]}}
    assert crd_problems(typo)
    wrong_type = {**monitor, "spec": {**monitor["spec"], "endpoints": "http"}}
    assert crd_problems(wrong_type)


def test_the_prometheusrule_is_generated_from_the_rule_files() -> None:
    generated = subprocess.run(
        [sys.executable, str(GENERATOR), "--stdout"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    shipped = (KUBERNETES / "prometheusrule.yaml").read_text()
    assert shipped == generated, "stale: run .venv/bin/python scripts/generate-prometheusrule.py"
    groups = [
        group
        for path in sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
    ]
    assert one("PrometheusRule")["spec"]["groups"] == groups


def config() -> Settings:
    data = one("ConfigMap")["data"]
    with as_deployed():
        return Settings(**tomllib.loads(data["agent-proxy.toml"]))


def pod() -> dict[str, Any]:
    spec: dict[str, Any] = one("Deployment")["spec"]["template"]["spec"]
    return spec


def test_the_configmap_holds_a_config_the_proxy_loads_from_the_mounted_path() -> None:
    settings = config()
    assert settings.server.host == "0.0.0.0"
    [container] = pod()["containers"]
    env = {e["name"]: e for e in container["env"]}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert env["AGENT_PROXY_CONFIG"]["value"] == f"{mount['mountPath']}/agent-proxy.toml"
    volume = next(v for v in pod()["volumes"] if v["name"] == "config")
    assert volume["configMap"]["name"] == one("ConfigMap")["metadata"]["name"]  # with kustomize's hash
    port = next(p["containerPort"] for p in container["ports"] if p["name"] == "http")
    assert port == settings.server.port


def test_secrets_are_referenced_never_shipped() -> None:
    assert all(o["kind"] != "Secret" for o in built())
    [container] = pod()["containers"]
    refs = {e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"] if "valueFrom" in e}
    assert refs == {"token-secret", "redis-url", "llm-api-key"}
    keys = next(v for v in pod()["volumes"] if v["name"] == "keys")["secret"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "keys")
    assert env["AGENT_PROXY_AUTH__KEYS_FILE"] == f"{mount['mountPath']}/{keys['items'][0]['path']}"
    assert env["AGENT_PROXY_AUTH__MODE"] == "keys"
    # The Secret's token secret is the one the proxy signs with (every replica the same).
    assert env["AGENT_PROXY_AUTH__TOKEN_SECRET_ENV"] == "AGENT_PROXY_TOKEN_SECRET"
    llm = config().upstreams["llm"]
    assert llm.api_key_env in env


def test_the_deployment_drains_before_it_is_killed() -> None:
    deployment = one("Deployment")
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    spec = pod()
    [container] = spec["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    assert pre_stop >= 5
    assert spec["terminationGracePeriodSeconds"] > pre_stop + config().server.drain_timeout_s


def test_the_pod_runs_locked_down_with_bounded_resources() -> None:
    spec = pod()
    [container] = spec["containers"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in next(v for v in spec["volumes"] if v["name"] == tmp["name"])
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}


def test_autoscaling_disruption_budget_policy_and_monitoring_select_the_pods() -> None:
    labels: dict[str, str] = one("Deployment")["spec"]["template"]["metadata"]["labels"]

    def selects(selector: dict[str, str]) -> bool:
        return selector.items() <= labels.items()

    assert selects(one("Service")["spec"]["selector"])
    assert selects(one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"])
    assert selects(one("NetworkPolicy")["spec"]["podSelector"]["matchLabels"])
    assert one("ServiceMonitor")["spec"]["selector"]["matchLabels"].items() <= (
        one("Service")["metadata"]["labels"].items()
    )
    assert one("ServiceMonitor")["spec"]["endpoints"][0]["port"] == one("Service")["spec"]["ports"][0]["name"]
    hpa = one("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"]["name"] == one("Deployment")["metadata"]["name"]
    assert hpa["minReplicas"] >= 2


def test_the_active_streams_component_scales_on_the_metric_the_adapter_rule_serves(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    component = KUBERNETES / "components" / "hpa-active-streams"
    # kustomize takes only relative paths.
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [os.path.relpath(KUBERNETES, overlay)],
                "components": [os.path.relpath(component, overlay)],
            }
        )
    )
    [hpa] = [o for o in built(overlay) if o["kind"] == "HorizontalPodAutoscaler"]
    kubernetes_validate.validate(hpa, KUBERNETES_VERSION, strict=True)
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert set(metrics) == {"Resource", "Pods"}
    name = metrics["Pods"]["pods"]["metric"]["name"]
    assert name == "agent_proxy_active_streams"
    readme = (KUBERNETES / "README.md").read_text()
    [rule] = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(rules:.*?)```", readme, re.DOTALL)]
    adapter = rule["rules"][0]
    assert adapter["seriesQuery"].startswith(f"{name}{{")
    assert adapter["name"]["as"] == name
    assert f'"{name}"' in (ROOT / "proxy" / "observability" / "metrics.py").read_text()
