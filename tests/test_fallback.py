"""Fallback models, the circuit breaker, mid-stream policy and the stream deadline."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from proxy.mock_upstream import MockServer
from tests.conftest import ProxyFactory, settings_for
from tests.support import assert_stream_invariants, post_stream

# Both attempt paths: the direct model stream and the agent loop.
pytestmark = pytest.mark.usefixtures("attempt_path")

FAST_RETRY: dict[str, Any] = {"max_attempts": 2, "backoff_initial_s": 0.01, "backoff_jitter_s": 0.01}
DOWN = "down?fault=http500"
GOOD = "good?chunks=3"


async def agents_view(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(f"{url}/v1/agents") as resp:
        agents: list[dict[str, Any]] = (await resp.json())["agents"]
    return {a["name"]: a for a in agents}


async def test_fallback_model_answers_when_the_primary_attempts_are_spent(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    settings = settings_for(
        mock, {"a": {"model": DOWN, "fallback_models": [f"mock:{GOOD}"]}}, retry=FAST_RETRY
    )
    proxy = await make_proxy(settings)
    result = await post_stream(session, proxy.url, "a", "hi")
    assert result.types() == ["start", "retry", "retry", "delta", "delta", "delta", "end"]
    assert [r["reason"] for r in result.of("retry")] == ["http_500", "http_500"]
    assert result.end["text"] == "tok0 tok1 tok2"
    assert result.end["attempts"] == 3
    assert result.of("start")[0]["model"] == f"mock:{DOWN}"
    assert result.end["model"] == f"mock:{GOOD}"  # the client can tell that the fallback answered
    assert mock.stats.for_model(DOWN).requests == 2
    assert mock.stats.for_model(GOOD).requests == 1
    assert_stream_invariants([e.data for e in result.events])


async def test_circuit_opens_skips_the_primary_half_opens_and_recovers(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    flaky = "flaky?chunks=2&fault=http500&fault_times=2"
    settings = settings_for(
        mock,
        {"a": {"model": flaky, "fallback_models": [f"mock:{GOOD}"]}},
        retry={**FAST_RETRY, "max_attempts": 1},
        circuit={"failure_threshold": 2, "cooldown_s": 30},
    )
    proxy = await make_proxy(settings)
    now = [time.monotonic()]
    proxy.engine.breakers.clock = lambda: now[0]
    primary = f"mock:{flaky}"

    for _ in range(2):  # two failures in a row open the circuit; the fallback answers both
        result = await post_stream(session, proxy.url, "a", "hi")
        assert result.end["text"] == "tok0 tok1 tok2"
    assert (await agents_view(session, proxy.url))["a"]["circuits"][primary] == "open"

    skipped = await post_stream(session, proxy.url, "a", "hi")
    assert skipped.types() == ["start", "delta", "delta", "delta", "end"]  # no attempt on the primary
    assert skipped.end["attempts"] == 1
    assert mock.stats.for_model(flaky).requests == 2

    now[0] += 31  # past the cool-down: one probe goes to the primary, which has recovered
    probe = await post_stream(session, proxy.url, "a", "hi")
    assert probe.end["text"] == "tok0 tok1"
    assert mock.stats.for_model(flaky).requests == 3
    assert (await agents_view(session, proxy.url))["a"]["circuits"][primary] == "closed"


async def test_all_circuits_open_fails_fast_with_a_clear_error(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    settings = settings_for(
        mock, {"a": DOWN}, retry={**FAST_RETRY, "max_attempts": 1}, circuit={"failure_threshold": 1}
    )
    proxy = await make_proxy(settings)
    await post_stream(session, proxy.url, "a", "hi")
    result = await post_stream(session, proxy.url, "a", "hi")
    assert result.types() == ["start", "error", "end"]
    assert result.of("error")[0]["code"] == "upstream_unavailable"
    assert "circuit" in result.of("error")[0]["message"]
    assert result.end["attempts"] == 0
    assert mock.stats.for_model(DOWN).requests == 1


async def test_mid_stream_fail_policy_ends_with_error_and_keeps_the_text_sent(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    model = "cut?chunks=4&fault=drop&after=2&fault_times=1"
    settings = settings_for(mock, {"a": model}, retry={**FAST_RETRY, "mid_stream": "fail"})
    proxy = await make_proxy(settings)
    result = await post_stream(session, proxy.url, "a", "hi")
    assert result.types() == ["start", "delta", "delta", "error", "end"]
    assert result.of("error")[0]["code"] == "upstream_dropped"
    assert result.end["finish_reason"] == "error"
    assert result.end["text"] == "tok0 tok1"
    assert mock.stats.for_model(model).requests == 1


async def test_failure_before_content_is_retried_even_with_the_fail_policy(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    model = "early?chunks=2&fault=drop&after=0&fault_times=1"
    settings = settings_for(mock, {"a": model}, retry={**FAST_RETRY, "mid_stream": "fail"})
    proxy = await make_proxy(settings)
    result = await post_stream(session, proxy.url, "a", "hi")
    assert result.types() == ["start", "retry", "delta", "delta", "end"]
    assert result.of("retry")[0]["discard"] is False


async def test_total_deadline_ends_the_stream_with_timeout_and_is_not_retried(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    model = "stuck?chunks=4&fault=stall&after=1"
    settings = settings_for(
        mock,
        {"a": model},
        retry={**FAST_RETRY, "max_attempts": 5},
        timeouts={"first_token_s": 5, "idle_s": 5, "total_s": 0.4},
    )
    proxy = await make_proxy(settings)
    result = await post_stream(session, proxy.url, "a", "hi")
    assert result.types() == ["start", "delta", "error", "end"]
    assert result.of("error")[0]["code"] == "total_timeout"
    assert result.end["finish_reason"] == "timeout"
    assert 0.4 <= result.end["duration_s"] < 1.5
    assert mock.stats.for_model(model).requests == 1


async def test_retry_after_is_capped_by_config(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    model = "limited?chunks=2&fault=http429&retry_after=60&fault_times=1"
    settings = settings_for(mock, {"a": model}, retry={**FAST_RETRY, "retry_after_cap_s": 0.2})
    proxy = await make_proxy(settings)
    result = await post_stream(session, proxy.url, "a", "hi")
    assert result.of("retry")[0]["delay_s"] == 0.2
    assert result.end["text"] == "tok0 tok1"


async def test_the_agent_override_of_retry_policy_applies(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    settings = settings_for(
        mock, {"a": {"model": DOWN, "retry": {"max_attempts": 4}}, "b": DOWN}, retry=FAST_RETRY
    )
    proxy = await make_proxy(settings)
    assert (await post_stream(session, proxy.url, "a", "hi")).end["attempts"] == 4
    assert (await post_stream(session, proxy.url, "b", "hi")).end["attempts"] == 2
