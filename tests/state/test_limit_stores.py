"""The `LimitStore` contract, held by the memory store and by the Redis store against a real
`redis-server`; and limits that hold across two proxies sharing one Redis."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from proxy.auth.middleware import AUTH
from proxy.engine.refusals import StateUnavailable
from proxy.mock_upstream import MockServer
from proxy.state.limits import Decision, LimitStore, MemoryLimitStore
from proxy.state.redis_limits import RedisLimitStore
from tests.auth.helpers import ALPHA, bearer, entry, keyed_settings
from tests.conftest import ProxyFactory

WINDOW = 60.0
NOW = 1_000_000.0  # 20 s before the window ends


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> LimitStore:
    if request.param == "memory":
        return MemoryLimitStore()
    redis: Redis = request.getfixturevalue("redis")
    return RedisLimitStore(redis, prefix=request.getfixturevalue("prefix"))


async def test_a_window_counts_to_its_limit_then_refuses_without_counting(store: LimitStore) -> None:
    assert await store.hit("k", WINDOW, 1, 2, NOW) == Decision(True, 2, 1, 20.0)
    assert await store.hit("k", WINDOW, 1, 2, NOW + 1) == Decision(True, 2, 0, 19.0)
    assert await store.hit("k", WINDOW, 1, 2, NOW + 2) == Decision(False, 2, 0, 18.0)
    assert await store.hit("k", WINDOW, 0, 2, NOW + 3) == Decision(False, 2, 0, 17.0)
    assert (await store.hit("other", WINDOW, 1, 2, NOW)).allowed  # keys are separate


async def test_the_next_window_starts_empty(store: LimitStore) -> None:
    await store.hit("k", WINDOW, 5, 5, NOW)
    assert not (await store.hit("k", WINDOW, 1, 5, NOW + 19.9)).allowed
    assert await store.hit("k", WINDOW, 1, 5, NOW + 20) == Decision(True, 5, 4, 60.0)


async def test_a_charge_may_overshoot_and_spends_the_window(store: LimitStore) -> None:
    assert (await store.hit("t", WINDOW, 0, 10, NOW)).remaining == 10  # asking costs nothing
    assert (await store.hit("t", WINDOW, 25, 10, NOW)).allowed
    assert not (await store.hit("t", WINDOW, 0, 10, NOW)).allowed


async def test_slots_are_taken_up_to_the_limit_and_given_back(store: LimitStore) -> None:
    assert await store.acquire_slot("s", 2)
    assert await store.acquire_slot("s", 2)
    assert not await store.acquire_slot("s", 2)
    await store.release_slot("s")
    assert await store.acquire_slot("s", 2)
    for _ in range(2):
        await store.release_slot("s")
    assert await store.acquire_slot("s", 1)


async def test_concurrent_hits_and_slots_never_exceed_the_limit(store: LimitStore) -> None:
    hits = await asyncio.gather(*(store.hit("burst", WINDOW, 1, 10, NOW) for _ in range(50)))
    assert sum(d.allowed for d in hits) == 10
    slots = await asyncio.gather(*(store.acquire_slot("burst", 7) for _ in range(50)))
    assert sum(slots) == 7


async def test_two_redis_stores_share_their_counts(redis: Redis, prefix: str) -> None:
    one, two = RedisLimitStore(redis, prefix), RedisLimitStore(redis, prefix)
    assert (await one.hit("k", WINDOW, 1, 2, NOW)).allowed
    assert (await two.hit("k", WINDOW, 1, 2, NOW)).allowed
    assert not (await one.hit("k", WINDOW, 1, 2, NOW)).allowed
    assert await one.acquire_slot("s", 1)
    assert not await two.acquire_slot("s", 1)
    await two.release_slot("s")
    assert await one.acquire_slot("s", 1)


async def test_an_unreachable_redis_is_state_unavailable_not_a_hang() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = Redis(
        host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    store = RedisLimitStore(client)
    async with asyncio.timeout(5):
        with pytest.raises(StateUnavailable):
            await store.hit("k", WINDOW, 1, 2, NOW)
        with pytest.raises(StateUnavailable):
            await store.acquire_slot("k", 1)
    await client.aclose()


async def test_limits_hold_across_two_proxies_on_one_redis(
    mock: MockServer,
    make_proxy: ProxyFactory,
    session: aiohttp.ClientSession,
    redis: Redis,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("proxy.app.MemoryLimitStore", lambda: RedisLimitStore(redis, prefix))
    settings = keyed_settings(
        mock, {"a": "m?chunks=2"}, [entry("alpha", ALPHA, limits={"requests_per_minute": 3})]
    )
    proxies = [await make_proxy(settings), await make_proxy(settings)]
    for proxy in proxies:
        proxy.app[AUTH].limiter.clock = lambda: NOW
    statuses = []
    for i in range(5):
        url = proxies[i % 2].url
        async with session.post(
            f"{url}/v1/agents/a/run", json={"prompt": "hi"}, headers=bearer(ALPHA)
        ) as resp:
            statuses.append(resp.status)
    assert statuses == [200, 200, 200, 429, 429]
