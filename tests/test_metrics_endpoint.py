"""`GET /metrics` over HTTP: what a stream records, and what bad requests must not create."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from proxy.mock_upstream import MockServer
from tests.conftest import ProxyFactory, settings_for
from tests.support import post_stream


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
