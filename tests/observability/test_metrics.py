"""The metrics observer: every metric of docs/monitoring.md, recorded from the event stream by the pump."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_plain

from proxy.events import Delta
from proxy.observability.metrics import OTHER, TTFT_BUCKETS, ProxyMetrics
from proxy.observability.metrics_observer import MetricsObserver
from proxy.observability.observer import Observers, StreamContext
from proxy.observability.tracing import TracingObserver

from .conftest import AGENTS, MODELS, Script, Traced, drive, sample

# docs/monitoring.md: name -> (type, labels).
DOCUMENTED_METRICS: dict[str, tuple[str, set[str]]] = {
    "agent_proxy_requests": ("counter", {"agent", "transport", "outcome", "key"}),
    "agent_proxy_request_duration_seconds": ("histogram", {"agent", "transport"}),
    "agent_proxy_time_to_first_token_seconds": ("histogram", {"agent", "model", "transport"}),
    "agent_proxy_inter_token_seconds": ("histogram", {"agent", "model"}),
    "agent_proxy_active_streams": ("gauge", {"transport"}),
    "agent_proxy_upstream_attempts": ("counter", {"agent", "model", "outcome"}),
    "agent_proxy_retries": ("counter", {"agent", "model", "reason"}),
    "agent_proxy_fallbacks": ("counter", {"agent", "model"}),
    "agent_proxy_upstream_errors": ("counter", {"agent", "model", "error_type"}),
    "agent_proxy_tokens": ("counter", {"agent", "model", "token_type", "key"}),
    "agent_proxy_heartbeats": ("counter", {"transport"}),
    "agent_proxy_client_disconnects": ("counter", {"transport"}),
    "agent_proxy_circuit_open": ("gauge", {"model"}),
    "agent_proxy_rate_limited": ("counter", {"key", "limit"}),
    "agent_proxy_auth_failures": ("counter", {"reason"}),
    "agent_proxy_build": ("info", {"version"}),
    # Shared state and resumption.
    "agent_proxy_resumes": ("counter", {"outcome"}),
    "agent_proxy_takeovers": ("counter", set()),
    "agent_proxy_state_errors": ("counter", {"op"}),
    "agent_proxy_state_operation_seconds": ("histogram", {"op"}),
    # The process's own load.
    "agent_proxy_event_loop_lag_seconds": ("histogram", set()),
    "agent_proxy_streams_waiting": ("gauge", set()),
}


async def traffic(observer: Observers) -> None:
    """One stream of every kind, so that every metric has a series."""
    await drive(observer, Script("a").ok(gap=0.002), transport="sse")
    s = Script("b")
    s.start("mock:slow").attempt("mock:slow").deltas("x").finish_attempt(
        "mock:slow", "error", "http_503", "http_503"
    )
    s.circuit("mock:slow", "open").fallback("mock:slow", "mock:fast", "http_503").retry(
        "http_503", discard=True
    )
    s.attempt("mock:fast").deltas("y", "z").finish_attempt("mock:fast").end("stop", 3, 4)
    await drive(observer, s, transport="ws")
    await drive(observer, Script("c").start().attempt().pause(0.12).deltas("a"), transport="openai",
                heartbeat_interval=0.05, gone_after=1)  # fmt: skip


async def test_successful_stream_records_requests_latency_tokens_and_attempts(
    metrics: ProxyMetrics, metrics_observer: Observers
) -> None:
    await drive(metrics_observer, Script().ok(texts=("a", "b", "c"), gap=0.01), arrived_ago=0.05)

    assert sample(metrics, "agent_proxy_requests_total", agent="demo", transport="sse", outcome="stop") == 1
    assert sample(metrics, "agent_proxy_request_duration_seconds_count", agent="demo", transport="sse") == 1
    assert sample(metrics, "agent_proxy_request_duration_seconds_sum", agent="demo", transport="sse") >= 0.08
    ttft = {"agent": "demo", "model": "mock:fast", "transport": "sse"}
    assert sample(metrics, "agent_proxy_time_to_first_token_seconds_count", **ttft) == 1
    assert 0.06 <= sample(metrics, "agent_proxy_time_to_first_token_seconds_sum", **ttft) < 1.0
    itl = {"agent": "demo", "model": "mock:fast"}
    assert sample(metrics, "agent_proxy_inter_token_seconds_count", **itl) == 2
    assert sample(metrics, "agent_proxy_inter_token_seconds_sum", **itl) >= 0.02
    assert (
        sample(metrics, "agent_proxy_tokens_total", agent="demo", model="mock:fast", token_type="input") == 5
    )
    assert (
        sample(metrics, "agent_proxy_tokens_total", agent="demo", model="mock:fast", token_type="output") == 7
    )
    assert sample(metrics, "agent_proxy_upstream_attempts_total", agent="demo", model="mock:fast",
                  outcome="success") == 1  # fmt: skip
    assert sample(metrics, "agent_proxy_active_streams", transport="sse") == 0


async def test_active_streams_counts_streams_in_progress_per_transport(
    metrics: ProxyMetrics, metrics_observer: Observers
) -> None:
    release = asyncio.Event()

    async def engine() -> Any:
        for e in Script().start().attempt().steps:
            yield e
        await release.wait()
        for e in Script().end().steps:
            yield e

    tasks = [asyncio.create_task(drive(metrics_observer, engine(), transport=t)) for t in ("ws", "ws", "sse")]
    await asyncio.sleep(0.02)
    assert sample(metrics, "agent_proxy_active_streams", transport="ws") == 2
    assert sample(metrics, "agent_proxy_active_streams", transport="sse") == 1
    release.set()
    await asyncio.gather(*tasks)
    assert sample(metrics, "agent_proxy_active_streams", transport="ws") == 0
    assert sample(metrics, "agent_proxy_active_streams", transport="sse") == 0


async def test_retries_fallbacks_upstream_errors_and_circuit_come_from_internal_events(
    metrics: ProxyMetrics, metrics_observer: Observers
) -> None:
    s = Script().start("mock:slow")
    s.attempt("mock:slow").finish_attempt("mock:slow", "error", "http_503", "http_503").retry("http_503")
    s.attempt("mock:slow").deltas("par").finish_attempt("mock:slow", "error", "read", "stream_dropped")
    s.circuit("mock:slow", "open").fallback("mock:slow", "mock:fast", "stream_dropped")
    s.retry("stream_dropped", discard=True)
    s.attempt("mock:fast").deltas("full").finish_attempt("mock:fast").end("stop", 1, 2)
    await drive(metrics_observer, s)

    d = {"agent": "demo"}
    assert (
        sample(metrics, "agent_proxy_upstream_attempts_total", **d, model="mock:slow", outcome="error") == 2
    )
    assert (
        sample(metrics, "agent_proxy_upstream_attempts_total", **d, model="mock:fast", outcome="success") == 1
    )
    assert (
        sample(metrics, "agent_proxy_upstream_errors_total", **d, model="mock:slow", error_type="http_503")
        == 1
    )
    assert (
        sample(metrics, "agent_proxy_upstream_errors_total", **d, model="mock:slow", error_type="read") == 1
    )
    assert sample(metrics, "agent_proxy_retries_total", **d, model="mock:slow", reason="http_503") == 1
    # The retry after a fallback counts against the model that failed, not the one that runs next.
    assert sample(metrics, "agent_proxy_retries_total", **d, model="mock:slow", reason="stream_dropped") == 1
    assert sample(metrics, "agent_proxy_fallbacks_total", **d, model="mock:slow") == 1
    assert sample(metrics, "agent_proxy_circuit_open", model="mock:slow") == 1
    assert sample(metrics, "agent_proxy_circuit_open", model="mock:fast") == 0
    # TTFT is the stream's first content (on mock:slow); tokens go to the model that answered.
    assert sample(metrics, "agent_proxy_time_to_first_token_seconds_count", **d, model="mock:slow",
                  transport="sse") == 1  # fmt: skip
    assert sample(metrics, "agent_proxy_tokens_total", **d, model="mock:fast", token_type="output") == 2

    await drive(metrics_observer, Script("s-2").start("mock:slow").circuit("mock:slow", "half_open").attempt(
        "mock:slow").finish_attempt("mock:slow").circuit("mock:slow", "closed").end())  # fmt: skip
    assert sample(metrics, "agent_proxy_circuit_open", model="mock:slow") == 0


async def test_inter_token_gaps_do_not_span_attempts(
    metrics: ProxyMetrics, metrics_observer: Observers
) -> None:
    s = Script().start().attempt().deltas("a", "b").finish_attempt(outcome="error", error_type="read")
    s.retry("stream_dropped", discard=True).pause(0.3).attempt().deltas("a", "b", "c").finish_attempt().end()
    await drive(metrics_observer, s)
    itl = {"agent": "demo", "model": "mock:fast"}
    assert sample(metrics, "agent_proxy_inter_token_seconds_count", **itl) == 1 + 2
    assert sample(metrics, "agent_proxy_inter_token_seconds_sum", **itl) < 0.1


async def test_structured_output_events_count_as_content(
    metrics: ProxyMetrics, metrics_observer: Observers
) -> None:
    s = (
        Script()
        .start()
        .attempt()
        .output({"a": 1}, True)
        .output({"a": 1, "b": 2}, False)
        .finish_attempt()
        .end()
    )
    await drive(metrics_observer, s, transport="run")
    labels = {"agent": "demo", "model": "mock:fast"}
    assert sample(metrics, "agent_proxy_time_to_first_token_seconds_count", **labels, transport="run") == 1
    assert sample(metrics, "agent_proxy_inter_token_seconds_count", **labels) == 1


async def test_failed_stream_counts_its_outcome(metrics: ProxyMetrics, metrics_observer: Observers) -> None:
    s = Script().start().attempt().finish_attempt(outcome="error", error_type="http_400", reason="http_400")
    await drive(metrics_observer, s.error("upstream_bad_request").end("error"))
    assert sample(metrics, "agent_proxy_requests_total", agent="demo", transport="sse", outcome="error") == 1
    assert sample(metrics, "agent_proxy_requests_total", agent="demo", transport="sse", outcome="stop") == 0
    assert sample(metrics, "agent_proxy_time_to_first_token_seconds_count", agent="demo", model="mock:fast",
                  transport="sse") == 0  # fmt: skip


async def test_client_disconnect_is_an_outcome_and_a_counter(
    metrics: ProxyMetrics, metrics_observer: Observers
) -> None:
    driven = await drive(metrics_observer, Script().ok(texts=("a", "b", "c")), transport="ws", gone_after=2)
    assert driven.end is None
    assert sample(metrics, "agent_proxy_requests_total", agent="demo", transport="ws",
                  outcome="client_disconnect") == 1  # fmt: skip
    assert sample(metrics, "agent_proxy_client_disconnects_total", transport="ws") == 1
    assert sample(metrics, "agent_proxy_active_streams", transport="ws") == 0
    # The attempt in progress was cancelled with the stream (the engine cannot report it any more).
    assert sample(metrics, "agent_proxy_upstream_attempts_total", agent="demo", model="mock:fast",
                  outcome="cancelled") == 1  # fmt: skip
    assert sample(metrics, "agent_proxy_upstream_attempts_total", agent="demo", model="mock:fast",
                  outcome="success") == 0  # fmt: skip


async def test_heartbeats_are_counted_per_transport(
    metrics: ProxyMetrics, metrics_observer: Observers
) -> None:
    s = Script().start().attempt().pause(0.23).deltas("a").finish_attempt().end()
    await drive(metrics_observer, s, transport="openai", heartbeat_interval=0.05)
    assert 3 <= sample(metrics, "agent_proxy_heartbeats_total", transport="openai") <= 5
    assert sample(metrics, "agent_proxy_heartbeats_total", transport="sse") == 0


async def test_labels_stay_bounded(metrics: ProxyMetrics, metrics_observer: Observers) -> None:
    s = Script(agent="../../etc/passwd").start("evil:model-from-a-prompt").attempt("evil:model-from-a-prompt")
    for i in range(60):  # free-form vocabulary (reasons, error types) is capped
        s.finish_attempt("evil:model-from-a-prompt", "error", f"Error Type {i}!", f"reason-{i}").retry(
            f"reason-{i}"
        )
        s.attempt("evil:model-from-a-prompt")
    await drive(metrics_observer, s.end("stop", 1, 1))

    assert metrics.registry is not None
    families = {m.name: m for m in metrics.registry.collect()}
    for family in families.values():
        for smp in family.samples:
            assert smp.labels.get("agent", "demo") in {*AGENTS, OTHER}
            assert smp.labels.get("model", "mock:fast") in {*MODELS, OTHER}
    reasons = {s.labels["reason"] for s in families["agent_proxy_retries"].samples}
    assert len(reasons) == 32 + 1
    assert "reason_0" in reasons
    assert OTHER in reasons
    error_types = {s.labels["error_type"] for s in families["agent_proxy_upstream_errors"].samples}
    assert "error_type_0" in error_types
    assert len(error_types) == 33
    assert sample(metrics, "agent_proxy_requests_total", agent=OTHER, transport="sse", outcome="stop") == 1


def test_series_that_alerts_divide_by_exist_before_traffic(metrics: ProxyMetrics) -> None:
    assert metrics.registry is not None
    labels = {"agent": "writer", "transport": "openai", "outcome": "client_disconnect", "key": "anonymous"}
    assert metrics.registry.get_sample_value("agent_proxy_requests_total", labels) == 0
    for model in MODELS:
        assert metrics.registry.get_sample_value("agent_proxy_circuit_open", {"model": model}) == 0
    for transport in ("sse", "ws", "openai", "run"):
        assert metrics.registry.get_sample_value("agent_proxy_active_streams", {"transport": transport}) == 0


def test_slo_thresholds_are_bucket_edges() -> None:
    m = ProxyMetrics(["demo"], ["mock:fast"], slo_ttft_s=3.0, slo_inter_token_s=0.125)
    assert m.ttft._upper_bounds == sorted([*TTFT_BUCKETS, 3.0, float("inf")])
    assert 0.125 in m.inter_token._upper_bounds
    assert 2.5 in TTFT_BUCKETS  # the shipped alert rule's default SLO


async def test_exposition_has_exactly_the_design_metrics_and_passes_promtool(
    metrics: ProxyMetrics, metrics_observer: Observers, promtool: Callable[..., Any]
) -> None:
    await traffic(metrics_observer)
    body, content_type = metrics.render(None)
    assert content_type.startswith("text/plain; version=0.0.4")
    text = body.decode()

    lint = promtool("check", "metrics", stdin=text)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    families = {f.name: f for f in parse_plain(text)}
    # The plain format shows `info` as a gauge named with its `_info` suffix.
    families["agent_proxy_build"] = families.pop("agent_proxy_build_info")
    assert set(families) == set(DOCUMENTED_METRICS)
    for name, (kind, labels) in DOCUMENTED_METRICS.items():
        family = families[name]
        assert family.type == (kind if kind != "info" else "gauge"), name
        for smp in family.samples:
            assert set(smp.labels) - {"le"} == labels, (name, smp.labels)
    assert "_created" not in text


async def test_openmetrics_exposition_carries_trace_ids_as_exemplars(
    metrics: ProxyMetrics, traced: Traced
) -> None:
    observer = Observers([TracingObserver(traced.provider), MetricsObserver(metrics)])
    driven = await drive(observer, Script().ok())
    trace_id = driven.ctx.trace_id
    assert trace_id is not None

    body, content_type = metrics.render("application/openmetrics-text;version=1.0.0,text/plain;q=0.5")
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    families = {f.name: f for f in parse_openmetrics(body.decode())}
    assert families["agent_proxy_build"].type == "info"
    for name in ("agent_proxy_time_to_first_token_seconds", "agent_proxy_request_duration_seconds"):
        exemplars = [s.exemplar for s in families[name].samples if s.exemplar is not None]
        assert [e.labels for e in exemplars] == [{"trace_id": trace_id}], name
    assert traced.by_name("agent_proxy.stream")[0].context.trace_id == int(trace_id, 16)
    assert b"_created" not in body


def test_delta_on_the_hot_path_is_cheap(metrics: ProxyMetrics) -> None:
    """Recording a delta costs one dict lookup and one histogram observe: well under 20 µs."""
    observer = MetricsObserver(metrics)
    ctx = StreamContext(stream_id="s", agent="demo", transport="sse")
    observer.stream_started(ctx)
    delta = Delta(stream_id="s", text="x")
    n = 20_000
    t0 = time.perf_counter()
    for _ in range(n):
        ctx.last_content_at = ctx.first_content_at = time.monotonic()
        observer.event_sent(ctx, delta)
    per_event = (time.perf_counter() - t0) / n
    assert per_event < 20e-6, f"{per_event * 1e6:.1f} µs per delta"


@pytest.mark.parametrize("accept", [None, "text/plain", "*/*"])
async def test_plain_text_unless_openmetrics_is_accepted(metrics: ProxyMetrics, accept: str | None) -> None:
    _, content_type = metrics.render(accept)
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
