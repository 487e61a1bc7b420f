"""`GET /metrics` over HTTP: what a stream records, and what bad requests must not create."""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy.mock_upstream import MockServer
from tests.conftest import ProxyFactory, settings_for
from tests.support import UI_BODIES, post_stream


async def test_streams_are_counted_and_bad_names_create_no_series(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=3"}))
    assert (await post_stream(session, proxy.url, "a", "hi")).end["finish_reason"] == "stop"
    assert (await post_stream(session, proxy.url, "evil-agent", "hi")).status == 404
    async with session.get(f"{proxy.url}/v1/no/such/path-xyz") as resp:
        assert resp.status == 404
    async with session.get(f"{proxy.url}/metrics") as resp:
        assert resp.status == 200
        body = await resp.text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }
    series = (("agent", "a"), ("key", "anonymous"), ("outcome", "stop"), ("transport", "sse"))
    assert samples[("agent_proxy_requests_total", series)] == 1.0
    assert "evil-agent" not in body
    assert "path-xyz" not in body


@pytest.mark.parametrize(("path", "transport"), [("vercel-ai", "vercel_ai"), ("ag-ui", "ag_ui")])
async def test_ui_protocol_streams_are_recorded_under_their_transport(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession, path: str, transport: str
) -> None:
    model = "m?chunks=3&ttfc_ms=200&fault=drop&after=1&fault_times=1"
    settings = settings_for(
        mock, {"a": model}, server={"heartbeat_interval_s": 0.05}, retry={"backoff_initial_s": 0.01}
    )
    proxy = await make_proxy(settings)
    async with session.post(f"{proxy.url}/v1/agents/a/{path}", json=UI_BODIES[path]) as resp:
        assert resp.status == 200
        await resp.read()
    async with session.get(f"{proxy.url}/metrics") as resp:
        body = await resp.text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }
    outcome = (
        "agent_proxy_requests_total",
        (("agent", "a"), ("key", "anonymous"), ("outcome", "stop"), ("transport", transport)),
    )
    assert samples[outcome] == 1.0
    ttft = (
        "agent_proxy_time_to_first_token_seconds_count",
        (("agent", "a"), ("model", f"mock:{model}"), ("transport", transport)),
    )
    assert samples[ttft] == 1.0
    retries = (
        "agent_proxy_retries_total",
        (("agent", "a"), ("model", f"mock:{model}"), ("reason", "stream_dropped")),
    )
    assert samples[retries] == 1.0
    assert samples[("agent_proxy_heartbeats_total", (("transport", transport),))] >= 2
    assert samples[("agent_proxy_active_streams", (("transport", transport),))] == 0
