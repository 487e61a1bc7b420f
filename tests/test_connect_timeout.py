"""The connect timeout: an upstream whose listen queue is full never completes the handshake."""

from __future__ import annotations

import aiohttp

from proxy.config import Settings
from tests.conftest import ProxyFactory
from tests.support import post_stream


async def test_connect_timeout_is_retried_then_reported(
    blackhole_url: str, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    settings = Settings(
        upstreams={"hole": {"base_url": blackhole_url}},
        agents={"a": {"model": "hole:m"}},
        retry={"max_attempts": 2, "backoff_initial_s": 0.01, "backoff_jitter_s": 0},
        timeouts={"connect_s": 0.3, "first_token_s": 10},
    )
    proxy = await make_proxy(settings)
    result = await post_stream(session, proxy.url, "a", "hi")
    assert result.types() == ["start", "retry", "error", "end"]
    assert result.of("retry")[0]["reason"] == "connect_timeout"
    assert result.of("error")[0]["code"] == "connect_timeout"
    assert result.end["finish_reason"] == "timeout"
    assert 0.6 <= result.end["duration_s"] < 3


async def test_each_agent_gets_its_own_connect_timeout_on_a_shared_upstream(
    blackhole_url: str, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    # The patient agent comes first: a provider cached per upstream would give both its 30 s.
    settings = Settings(
        upstreams={"hole": {"base_url": blackhole_url}},
        agents={
            "patient": {"model": "hole:m", "timeouts": {"connect_s": 30}},
            "hasty": {"model": "hole:m", "timeouts": {"connect_s": 0.3}},
        },
        retry={"max_attempts": 1},
        timeouts={"first_token_s": 60},
    )
    proxy = await make_proxy(settings)
    result = await post_stream(session, proxy.url, "hasty", "hi")
    assert result.of("error")[0]["code"] == "connect_timeout"
    assert result.end["duration_s"] < 5
