"""Several worker processes, one `/metrics` view (prometheus-client multiprocess mode)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import values
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_plain

from proxy.observability.metrics import ProxyMetrics
from proxy.observability.multiprocess import prepare_multiprocess_dir, worker_exited

from .conftest import ROOT


async def child(*args: str, multiproc_dir: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc_dir)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.observability.children", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def total(text: str, name: str, **labels: str) -> float:
    return sum(
        s.value
        for family in parse_plain(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def test_workers_add_up_to_one_consistent_view(tmp_path: Path, promtool: Callable[..., Any]) -> None:
    workers = await asyncio.gather(
        child("worker", "1", "leak", multiproc_dir=tmp_path),
        child("worker", "2", "-", multiproc_dir=tmp_path),
        child("worker", "3", "-", multiproc_dir=tmp_path),
    )
    view = await child("collect", multiproc_dir=tmp_path)
    plain = view["plain"]

    assert total(plain, "agent_proxy_requests_total") == 1 + 2 + 3
    assert total(plain, "agent_proxy_requests_total", agent="demo", transport="sse", outcome="stop") == 6
    assert total(plain, "agent_proxy_time_to_first_token_seconds_count") == 6
    assert total(plain, "agent_proxy_request_duration_seconds_bucket", le="+Inf") == 6
    assert total(plain, "agent_proxy_tokens_total", token_type="output") == 6 * 7
    # The leaking worker's open stream is still counted as active while the worker lives...
    assert total(plain, "agent_proxy_active_streams", transport="sse") == 1
    assert 'agent_proxy_build_info{version="' in plain
    assert "_created" not in plain
    assert 'pid="' not in plain  # gauges are merged (livesum / livemax), not shown per process
    lint = promtool("check", "metrics", stdin=plain)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    # ... exemplars of every worker survive the merge (prometheus-client drops them in this mode) ...
    trace_ids = {t for w in workers for t in w["trace_ids"]}
    families = {f.name: f for f in parse_openmetrics(view["openmetrics"])}
    for name in ("agent_proxy_time_to_first_token_seconds", "agent_proxy_request_duration_seconds"):
        seen = {s.exemplar.labels["trace_id"] for s in families[name].samples if s.exemplar is not None}
        assert seen, name
        assert seen <= trace_ids

    # ... and once the parent reaps it, its live gauges go; its counters stay.
    worker_exited(workers[0]["pid"], str(tmp_path))
    after = (await child("collect", multiproc_dir=tmp_path))["plain"]
    assert total(after, "agent_proxy_active_streams", transport="sse") == 0
    assert total(after, "agent_proxy_requests_total") == 6


def test_prepare_multiprocess_dir_starts_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    (tmp_path / "counter_123.db").write_bytes(b"stale")
    (tmp_path / "exemplars_123.json").write_text("{}")
    (tmp_path / "keep.txt").write_text("not ours")

    path = prepare_multiprocess_dir(str(tmp_path))

    assert path == str(tmp_path)
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    assert getattr(values.ValueClass, "_multiprocess", False)


def test_an_empty_multiproc_variable_means_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """prometheus-client switches to files (in the working directory!) when the variable merely exists;
    the proxy treats an empty one as unset and keeps in-memory values, with their exemplars."""
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue())
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    m = ProxyMetrics(["demo"], ["mock:fast"])
    assert m.multiproc_dir is None
    assert not getattr(values.ValueClass, "_multiprocess", False)
    m.ttft.labels("demo", "mock:fast", "sse").observe(0.3, {"trace_id": "ab" * 16})
    body, _ = m.render("application/openmetrics-text; version=1.0.0")
    assert b'# {trace_id="' + b"ab" * 16 + b'"} 0.3' in body
