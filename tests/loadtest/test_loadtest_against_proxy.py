"""The load generator against the real thing: the mock upstream directly (the baseline) and the proxy's
three transports in front of it, so a drift between the wire protocol and its client shows up here."""

from __future__ import annotations

import pytest

from proxy.loadtest import LoadConfig, run_load
from proxy.loadtest.config import Target
from proxy.mock_upstream import MockServer
from tests.conftest import ProxyFactory, settings_for

SHAPE = "m?chunks=6&ttfc_ms=20&gap_ms=5"


async def test_openai_target_on_the_mock_is_the_baseline(mock: MockServer) -> None:
    cfg = LoadConfig(url=mock.base_url, target="openai", agent=SHAPE, concurrency=2, requests=4)
    result = await run_load(cfg)
    assert result.errors == {}
    assert result.ok == 4
    for rec in result.records:
        assert rec.chunks == 6
        assert rec.ttft_s is not None and rec.ttft_s >= 0.019
        assert rec.output_tokens == 6
        assert len(rec.gaps) == 5 and min(rec.gaps) >= 0.0
    assert result.itl["p50"] >= 0.004


async def test_mock_in_stream_errors_and_drops_are_counted_by_kind(mock: MockServer) -> None:
    dropped = await run_load(
        LoadConfig(url=mock.base_url, target="openai", agent="m?fault=drop&after=2", requests=2)
    )
    assert dropped.errors == {"truncated": 2}
    assert all(r.chunks == 2 for r in dropped.records)
    failing = await run_load(
        LoadConfig(url=mock.base_url, target="openai", agent="m?fault=http503", requests=2)
    )
    assert failing.errors == {"http_503": 2}


@pytest.mark.parametrize("target", ["sse", "ws", "openai", "responses", "anthropic"])
async def test_every_proxy_transport_streams_under_load(
    mock: MockServer, make_proxy: ProxyFactory, target: Target
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": SHAPE}))
    cfg = LoadConfig(
        url=proxy.url,
        target=target,
        agent="a",
        concurrency=4,
        requests=8,
        ws_streams_per_socket=2,
        timeout_s=10.0,
    )
    result = await run_load(cfg)
    assert result.errors == {}
    assert result.ok == 8
    assert result.tokens == 8 * 6
    for rec in result.records:
        assert rec.chunks >= 1
        assert rec.ttft_s is not None and rec.ttft_s >= 0.019


async def test_proxy_retries_show_up_as_retry_events(mock: MockServer, make_proxy: ProxyFactory) -> None:
    settings = settings_for(
        mock,
        {"a": "flaky?chunks=3&fault=http500&fault_times=1"},
        retry={"max_attempts": 3, "backoff_initial_s": 0.01, "backoff_jitter_s": 0.0},
    )
    proxy = await make_proxy(settings)
    result = await run_load(LoadConfig(url=proxy.url, target="sse", agent="a", requests=2, timeout_s=10.0))
    assert result.ok == 2
    # The first request met the injected failure and was retried; the second went through.
    assert [r.retries for r in result.records] == [1, 0]


async def test_the_responses_target_counts_a_failed_response_by_its_code(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    settings = settings_for(mock, {"a": "m?chunks=4&fault=drop&after=2"}, retry={"max_attempts": 1})
    proxy = await make_proxy(settings)
    result = await run_load(
        LoadConfig(url=proxy.url, target="responses", agent="a", requests=2, timeout_s=10.0)
    )
    assert result.errors == {"server_error": 2}
    assert all(r.chunks == 2 for r in result.records)
