"""Heartbeats keep idle intermediaries from cutting a stream, also before the first token."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from proxy.mock_upstream import MockServer
from tests.conftest import ProxyFactory, settings_for
from tests.support import assert_stream_invariants, post_stream

HEARTBEAT = {"heartbeat_interval_s": 0.1}


async def test_sse_heartbeats_while_waiting_for_the_first_token_and_between_chunks(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?ttfc_ms=450&chunks=2&gap_ms=450"}, server=HEARTBEAT))
    result = await post_stream(session, proxy.url, "a", "hi")
    types = result.types(heartbeats=True)
    first_delta = types.index("delta")
    assert types[0] == "start"
    assert types[1:first_delta].count("heartbeat") >= 2, types
    between = types[first_delta + 1 : types.index("delta", first_delta + 1)]
    assert between.count("heartbeat") >= 2, types
    heartbeats = [e for e in result.events if e.event == "heartbeat"]
    assert all(e.id is None and "seq" not in e.data and e.data["ts"] > 0 for e in heartbeats)
    assert_stream_invariants([e.data for e in result.events])


async def test_no_heartbeat_while_content_keeps_flowing(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(
        settings_for(mock, {"a": "m?chunks=20&gap_ms=10"}, server={"heartbeat_interval_s": 5})
    )
    result = await post_stream(session, proxy.url, "a", "hi")
    assert "heartbeat" not in result.types(heartbeats=True)


async def test_ws_heartbeats_carry_the_request_id(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?ttfc_ms=400&chunks=1"}, server=HEARTBEAT))
    frames: list[dict[str, Any]] = []
    async with session.ws_connect(f"{proxy.url}/v1/ws") as ws:
        await ws.send_str('{"type": "prompt", "request_id": "r", "agent": "a", "prompt": "x"}')
        while not frames or frames[-1]["type"] != "end":
            frames.append(orjson.loads((await ws.receive(timeout=5)).data))
    types = [f["type"] for f in frames]
    assert types[0] == "start" and types[-1] == "end"
    assert types[1 : types.index("delta")].count("heartbeat") >= 2, types
    assert all(f["request_id"] == "r" for f in frames)
    assert_stream_invariants(frames)
