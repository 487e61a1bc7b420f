"""Per-key limits (DESIGN 9): requests and tokens per minute, concurrent streams, on every wire."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI

from proxy.app import TELEMETRY
from proxy.auth.middleware import AUTH
from proxy.mock_upstream import MockServer
from proxy.state.limits import MemoryLimitStore
from tests.auth.helpers import ALPHA, BETA, bearer, entry, keyed_settings
from tests.conftest import Proxy, ProxyFactory
from tests.observability.conftest import sample
from tests.support import read_sse

NOW = 1_000_000.0
"""A clock 20 s before a minute window ends (1_000_020 is a multiple of 60)."""
HI: list[Any] = [{"role": "user", "content": "hi"}]


class CountingStore(MemoryLimitStore):
    """The memory store, counting slots taken and given back."""

    def __init__(self) -> None:
        super().__init__()
        self.acquired = 0
        self.released = 0

    async def acquire_slot(self, key: str, limit: int) -> bool:
        taken = await super().acquire_slot(key, limit)
        self.acquired += taken
        return taken

    async def release_slot(self, key: str) -> None:
        self.released += 1
        await super().release_slot(key)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> CountingStore:
    counting = CountingStore()
    monkeypatch.setattr("proxy.app.MemoryLimitStore", lambda: counting)
    return counting


async def limited(make_proxy: ProxyFactory, mock: MockServer, agents: dict[str, Any], **limits: int) -> Proxy:
    proxy = await make_proxy(
        keyed_settings(mock, agents, [entry("alpha", ALPHA, limits=limits), entry("beta", BETA)])
    )
    proxy.app[AUTH].limiter.clock = lambda: NOW
    return proxy


def move_clock(proxy: Proxy, to: float) -> None:
    proxy.app[AUTH].limiter.clock = lambda: to


async def run(session: aiohttp.ClientSession, proxy: Proxy, key: str = ALPHA) -> aiohttp.ClientResponse:
    async with session.post(
        f"{proxy.url}/v1/agents/a/run", json={"prompt": "hi"}, headers=bearer(key)
    ) as resp:
        await resp.read()
        return resp


def metric(proxy: Proxy, name: str, **labels: str) -> float:
    return sample(proxy.app[TELEMETRY].metrics, name, **labels)


async def test_requests_per_minute_refuse_with_429_and_openai_headers_until_the_window_refills(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await limited(make_proxy, mock, {"a": "m?chunks=2"}, requests_per_minute=2)
    first, second = await run(session, proxy), await run(session, proxy)
    assert first.status == second.status == 200
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    assert first.headers["x-ratelimit-reset-requests"] == "20s"
    async with session.post(
        f"{proxy.url}/v1/agents/a/run", json={"prompt": "hi"}, headers=bearer(ALPHA)
    ) as refused:
        assert refused.status == 429
        assert (await refused.json())["error"]["code"] == "rate_limited"
        assert refused.headers["Retry-After"] == "20"
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert metric(proxy, "agent_proxy_rate_limited_total", key="alpha", limit="requests") == 1
    assert (await run(session, proxy, BETA)).status == 200  # another key has its own window
    move_clock(proxy, NOW + 20)
    refilled = await run(session, proxy)
    assert refilled.status == 200
    assert refilled.headers["x-ratelimit-remaining-requests"] == "1"


async def test_a_refused_request_is_not_counted(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await limited(make_proxy, mock, {"a": "m?chunks=2"}, requests_per_minute=1)
    async with session.post(
        f"{proxy.url}/v1/agents/a/run", json={"prompt": ""}, headers=bearer(ALPHA)
    ) as resp:
        assert resp.status == 422
    async with session.post(
        f"{proxy.url}/v1/agents/zzz/run", json={"prompt": "x"}, headers=bearer(ALPHA)
    ) as resp:
        assert resp.status == 404
    assert (await run(session, proxy)).status == 200


async def test_tokens_per_minute_are_charged_with_the_reported_usage_and_refuse_a_spent_window(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await limited(make_proxy, mock, {"a": "m?chunks=8"}, tokens_per_minute=5)
    first = await run(session, proxy)  # 1 input + 8 output tokens: admitted, then the window is spent
    assert first.status == 200
    assert first.headers["x-ratelimit-limit-tokens"] == "5"
    assert first.headers["x-ratelimit-remaining-tokens"] == "5"
    await proxy.app[AUTH].limiter.settled()
    refused = await run(session, proxy)
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "20"
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"
    assert metric(proxy, "agent_proxy_rate_limited_total", key="alpha", limit="tokens") == 1
    move_clock(proxy, NOW + 20)
    assert (await run(session, proxy)).status == 200


async def test_concurrent_streams_refuse_the_one_over_the_limit_and_free_the_slot_at_the_end(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession, store: CountingStore
) -> None:
    proxy = await limited(make_proxy, mock, {"a": "m?chunks=30&gap_ms=20"}, concurrent_streams=1)
    async with session.post(
        f"{proxy.url}/v1/agents/a/stream", json={"prompt": "hi"}, headers=bearer(ALPHA)
    ) as running:
        assert (await read_sse(running, stop_after=2)).status == 200
        refused = await run(session, proxy)
        assert refused.status == 429
        assert refused.headers["Retry-After"] == "1"
        assert (await run(session, proxy, BETA)).status == 200
        rest = await read_sse(running)
        assert rest.end["finish_reason"] == "stop"
    await proxy.engine.wait_idle(5)
    await proxy.app[AUTH].limiter.settled()
    assert (await run(session, proxy)).status == 200
    await proxy.app[AUTH].limiter.settled()
    assert store.acquired == store.released == 2
    assert metric(proxy, "agent_proxy_rate_limited_total", key="alpha", limit="concurrency") == 1


async def _stop(proxy: Proxy, session: aiohttp.ClientSession) -> None:
    resp = await run(session, proxy)
    assert resp.status == 200


async def _error(proxy: Proxy, session: aiohttp.ClientSession) -> None:
    async with session.post(
        f"{proxy.url}/v1/agents/bad/run", json={"prompt": "hi"}, headers=bearer(ALPHA)
    ) as resp:
        assert (await resp.json())["finish_reason"] == "error"


async def _timeout(proxy: Proxy, session: aiohttp.ClientSession) -> None:
    async with session.post(
        f"{proxy.url}/v1/agents/stall/run", json={"prompt": "hi"}, headers=bearer(ALPHA)
    ) as resp:
        assert (await resp.json())["finish_reason"] == "timeout"


async def _cancel(proxy: Proxy, session: aiohttp.ClientSession) -> None:
    async with session.ws_connect(f"{proxy.url}/v1/ws", headers=bearer(ALPHA)) as ws:
        await ws.send_json({"type": "prompt", "request_id": "r1", "agent": "slow", "prompt": "hi"})
        assert (await ws.receive_json(timeout=5))["type"] == "start"
        await ws.send_json({"type": "cancel", "request_id": "r1"})
        while (frame := await ws.receive_json(timeout=5))["type"] != "end":
            pass
        assert frame["finish_reason"] == "cancelled"


async def _disconnect(proxy: Proxy, session: aiohttp.ClientSession) -> None:
    async with session.post(
        f"{proxy.url}/v1/agents/slow/stream", json={"prompt": "hi"}, headers=bearer(ALPHA)
    ) as resp:
        await read_sse(resp, stop_after=2)
        resp.close()


async def _drain(proxy: Proxy, session: aiohttp.ClientSession) -> None:
    async with session.post(
        f"{proxy.url}/v1/agents/slow/stream", json={"prompt": "hi"}, headers=bearer(ALPHA)
    ) as resp:
        await read_sse(resp, stop_after=2)
        await proxy.engine.drain(0.05)
        assert (await read_sse(resp)).end["finish_reason"] == "shutdown"


ENDINGS = {"stop": _stop, "error": _error, "timeout": _timeout, "cancel": _cancel,
           "disconnect": _disconnect, "drain": _drain}  # fmt: skip


@pytest.mark.parametrize("ending", list(ENDINGS))
async def test_a_stream_slot_is_released_exactly_once_however_the_stream_ends(
    mock: MockServer,
    make_proxy: ProxyFactory,
    session: aiohttp.ClientSession,
    store: CountingStore,
    ending: str,
) -> None:
    agents = {
        "a": "m?chunks=2",
        "bad": "b?fault=http400",
        "stall": {"model": "s?fault=stall", "timeouts": {"first_token_s": 0.2}},
        "slow": "w?chunks=500&gap_ms=20",
    }
    proxy = await limited(make_proxy, mock, agents, concurrent_streams=1)
    await ENDINGS[ending](proxy, session)
    await proxy.engine.wait_idle(5)
    await proxy.app[AUTH].limiter.settled()
    assert store.acquired == store.released == 1
    assert store.slots_in_use("alpha:streams") == 0


async def test_on_a_websocket_a_prompt_over_the_limit_gets_an_error_frame_and_the_socket_stays_open(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await limited(make_proxy, mock, {"a": "m?chunks=2"}, requests_per_minute=1)
    async with session.ws_connect(f"{proxy.url}/v1/ws", headers=bearer(ALPHA)) as ws:
        await ws.send_json({"type": "prompt", "request_id": "r1", "agent": "a", "prompt": "hi"})
        while (await ws.receive_json(timeout=5))["type"] != "end":
            pass
        await ws.send_json({"type": "prompt", "request_id": "r2", "agent": "a", "prompt": "hi"})
        frame = await ws.receive_json(timeout=5)
        assert frame["type"] == "error"
        assert frame["code"] == "rate_limited"
        assert frame["request_id"] == "r2"
        assert frame["retry_after_s"] == 20
        await ws.send_json({"type": "ping"})
        assert await ws.receive_json(timeout=5) == {"type": "pong"}
        move_clock(proxy, NOW + 20)
        await ws.send_json({"type": "prompt", "request_id": "r3", "agent": "a", "prompt": "hi"})
        assert (await ws.receive_json(timeout=5))["type"] == "start"


async def test_the_openai_sdk_raises_rate_limit_error_and_sees_the_headers(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await limited(make_proxy, mock, {"a": "m?chunks=2"}, requests_per_minute=1)
    async with AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key=ALPHA, max_retries=0) as client:
        raw = await client.chat.completions.with_raw_response.create(model="a", messages=HI)
        assert raw.headers["x-ratelimit-limit-requests"] == "1"
        assert raw.headers["x-ratelimit-remaining-requests"] == "0"
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model="a", messages=HI, stream=True)
        assert caught.value.code == "rate_limited"
        assert caught.value.response.headers["Retry-After"] == "20"
        assert caught.value.response.headers["x-ratelimit-remaining-requests"] == "0"


async def test_limits_hold_under_a_burst(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await limited(make_proxy, mock, {"a": "m?chunks=2"}, requests_per_minute=5)
    statuses = [r.status for r in await asyncio.gather(*(run(session, proxy) for _ in range(12)))]
    assert sorted(statuses) == [200] * 5 + [429] * 7
