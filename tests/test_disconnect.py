"""A client that goes away cancels the agent run and the upstream request within a second."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import aiohttp
import orjson
import pytest

from proxy.mock_upstream import MockServer
from tests.conftest import ProxyFactory, no_pending_tasks, settings_for
from tests.support import UI_BODIES, read_sse

# Both attempt paths: the direct model stream and the agent loop.
pytestmark = pytest.mark.usefixtures("attempt_path")

SLOW = "slow?chunks=500&gap_ms=20"
SILENT = "silent?ttfc_ms=60000"


async def _abort_after(
    session: aiohttp.ClientSession,
    url: str,
    events: int,
    before_abort: Awaitable[None] | None = None,
    body: dict[str, Any] | None = None,
) -> None:
    async with session.post(url, json=body or {"prompt": "hi"}) as resp:
        result = await read_sse(resp, stop_after=events)
        assert len(result.events) == events
        if before_abort is not None:
            await before_abort
        assert resp.connection is not None and resp.connection.transport is not None
        resp.connection.transport.abort()


async def test_disconnect_mid_stream_closes_the_upstream_within_a_second(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": SLOW}))
    await _abort_after(session, f"{proxy.url}/v1/agents/a/stream", events=4)
    await mock.stats.wait_for(lambda s: s.for_model(SLOW).streams_closed_by_client == 1, timeout=1.0)
    await proxy.engine.wait_idle(1.0)
    assert mock.stats.for_model(SLOW).streams_completed == 0
    assert len(proxy.conversations) == 0
    await no_pending_tasks()


@pytest.mark.parametrize("protocol", list(UI_BODIES))
async def test_disconnect_from_a_ui_protocol_stream_closes_the_upstream(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession, protocol: str
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": SLOW}))
    url = f"{proxy.url}/v1/agents/a/{protocol}"
    await _abort_after(session, url, events=4, body=UI_BODIES[protocol])
    await mock.stats.wait_for(lambda s: s.for_model(SLOW).streams_closed_by_client == 1, timeout=1.0)
    await proxy.engine.wait_idle(1.0)
    await no_pending_tasks()


async def test_disconnect_before_the_first_token_closes_the_upstream(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": SILENT}))
    upstream_waiting = mock.stats.wait_for(lambda s: s.for_model(SILENT).streams_started == 1, timeout=2.0)
    await _abort_after(session, f"{proxy.url}/v1/agents/a/stream", events=1, before_abort=upstream_waiting)
    await mock.stats.wait_for(lambda s: s.for_model(SILENT).streams_closed_by_client == 1, timeout=1.0)
    await proxy.engine.wait_idle(1.0)
    await no_pending_tasks()


async def test_websocket_close_cancels_its_streams(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": SLOW, "b": SILENT}))
    async with session.ws_connect(f"{proxy.url}/v1/ws") as ws:
        await ws.send_str('{"type": "prompt", "request_id": "1", "agent": "a", "prompt": "x"}')
        await ws.send_str('{"type": "prompt", "request_id": "2", "agent": "b", "prompt": "x"}')
        seen = 0
        while seen < 3:
            seen += orjson.loads((await ws.receive(timeout=5)).data)["type"] == "delta"
        await mock.stats.wait_for(lambda s: s.for_model(SILENT).streams_started == 1, timeout=2.0)
    await mock.stats.wait_for(lambda s: s.total.streams_closed_by_client == 2, timeout=1.0)
    await proxy.engine.wait_idle(1.0)
    await no_pending_tasks()
