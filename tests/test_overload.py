"""Our own overload is not the upstream's failure.

The proxy and the mock share this test's event loop; a task that hogs the loop (as a burst of
thousands of streams does) makes every timer and every socket callback late. Deadlines measured
while our loop could not run are not the upstream's slowness: no stream may fail for them, and the
upstream's circuit breaker must stay closed.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from proxy.app import TELEMETRY
from proxy.mock_upstream import MockServer
from tests.conftest import ProxyFactory, settings_for
from tests.observability.conftest import sample
from tests.support import post_stream


async def _hog_loop(stop: asyncio.Event, block_s: float, max_blocks: int) -> int:
    """Hold the loop for `block_s` at a time, letting it run one turn in between, until `stop`."""
    blocks = 0
    while not stop.is_set() and blocks < max_blocks:
        until = time.perf_counter() + block_s
        while time.perf_counter() < until:
            pass
        blocks += 1
        await asyncio.sleep(0)
    return blocks


async def test_a_lagging_loop_fails_no_stream_and_opens_no_circuit(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    settings = settings_for(
        mock,
        {"a": "fast?chunks=8"},
        timeouts={"connect_s": 0.2, "first_token_s": 0.5, "idle_s": 0.5},
        retry={"max_attempts": 2, "backoff_initial_s": 0.01, "backoff_jitter_s": 0},
        circuit={"failure_threshold": 2, "cooldown_s": 60},
    )
    proxy = await make_proxy(settings)
    stop = asyncio.Event()
    hog = asyncio.create_task(_hog_loop(stop, block_s=0.3, max_blocks=400))
    try:
        results = await asyncio.gather(*(post_stream(session, proxy.url, "a", f"hi {i}") for i in range(24)))
    finally:
        stop.set()
        blocks = await hog
    assert blocks >= 10, "the loop was not held long enough to lag the streams"

    for result in results:
        assert result.types()[0] == "start"
        assert result.of("error") == []
        assert result.end["finish_reason"] == "stop"
    metrics = proxy.app[TELEMETRY].metrics
    assert sample(metrics, "agent_proxy_upstream_errors_total") == 0
    assert sample(metrics, "agent_proxy_circuit_open") == 0
    assert sample(metrics, "agent_proxy_event_loop_lag_seconds_count") > 0
    assert proxy.engine.breakers.states() == {"mock:fast?chunks=8": "closed"}
