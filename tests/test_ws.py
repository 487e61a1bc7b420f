"""WebSocket transport (protocol.md 3.3): several streams on one socket, cancel, ping, bad frames."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import aiohttp
import orjson

from proxy.mock_upstream import MockServer
from tests.conftest import ProxyFactory, settings_for
from tests.support import assert_stream_invariants


async def collect(ws: aiohttp.ClientWebSocketResponse, ends: int) -> dict[str, list[dict[str, Any]]]:
    """Frames by request_id until `ends` streams have sent `end`."""
    by_request: dict[str, list[dict[str, Any]]] = defaultdict(list)
    done = 0
    while done < ends:
        frame = orjson.loads((await ws.receive(timeout=10)).data)
        by_request[frame.get("request_id")].append(frame)
        if frame["type"] == "end":
            done += 1
    return by_request


async def test_two_prompts_interleave_on_one_socket_and_both_end(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=5&gap_ms=20", "b": "n?chunks=4&gap_ms=25"}))
    async with session.ws_connect(f"{proxy.url}/v1/ws") as ws:
        await ws.send_str(
            orjson.dumps({"type": "prompt", "request_id": "r1", "agent": "a", "prompt": "x"}).decode()
        )
        await ws.send_str(
            orjson.dumps({"type": "prompt", "request_id": "r2", "agent": "b", "prompt": "y"}).decode()
        )
        frames = await collect(ws, 2)
    assert set(frames) == {"r1", "r2"}
    assert_stream_invariants(frames["r1"])
    assert_stream_invariants(frames["r2"])
    assert frames["r1"][-1]["text"] == "tok0 tok1 tok2 tok3 tok4"
    assert frames["r2"][-1]["text"] == "tok0 tok1 tok2 tok3"
    assert frames["r1"][0]["stream_id"] != frames["r2"][0]["stream_id"]


async def test_streams_really_interleave(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=6&gap_ms=30"}))
    arrivals: list[str] = []
    async with session.ws_connect(f"{proxy.url}/v1/ws") as ws:
        for rid in ("r1", "r2"):
            await ws.send_str(
                orjson.dumps({"type": "prompt", "request_id": rid, "agent": "a", "prompt": rid}).decode()
            )
        done = 0
        while done < 2:
            frame = orjson.loads((await ws.receive(timeout=10)).data)
            if frame["type"] == "delta":
                arrivals.append(frame["request_id"])
            done += frame["type"] == "end"
    # Both streams' deltas alternate rather than one stream running after the other.
    first_r2 = arrivals.index("r2")
    assert first_r2 < arrivals.index("r1", 3), arrivals


async def test_cancel_frame_ends_one_stream_while_the_other_finishes(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(
        settings_for(mock, {"slow": "slow?chunks=200&gap_ms=20", "fast": "f?chunks=5&gap_ms=20"})
    )
    async with session.ws_connect(f"{proxy.url}/v1/ws") as ws:
        await ws.send_str(
            orjson.dumps({"type": "prompt", "request_id": "s", "agent": "slow", "prompt": "x"}).decode()
        )
        await ws.send_str(
            orjson.dumps({"type": "prompt", "request_id": "f", "agent": "fast", "prompt": "y"}).decode()
        )
        frames: dict[str, list[dict[str, Any]]] = defaultdict(list)
        cancelled = False
        ends = 0
        while ends < 2:
            frame = orjson.loads((await ws.receive(timeout=10)).data)
            frames[frame["request_id"]].append(frame)
            if frame["request_id"] == "s" and frame["type"] == "delta" and not cancelled:
                await ws.send_str(orjson.dumps({"type": "cancel", "request_id": "s"}).decode())
                cancelled = True
            ends += frame["type"] == "end"
    assert frames["s"][-1]["finish_reason"] == "cancelled"
    assert_stream_invariants(frames["s"])
    assert frames["f"][-1]["finish_reason"] == "stop"
    assert frames["f"][-1]["text"] == "tok0 tok1 tok2 tok3 tok4"
    await mock.stats.wait_for(
        lambda s: s.for_model("slow?chunks=200&gap_ms=20").streams_closed_by_client == 1, 2
    )
    await proxy.engine.wait_idle(2)


async def test_ping_gets_pong(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    async with session.ws_connect(f"{proxy.url}/v1/ws") as ws:
        await ws.send_str('{"type": "ping"}')
        assert orjson.loads((await ws.receive(timeout=5)).data) == {"type": "pong"}


async def test_bad_frames_get_an_error_and_the_socket_stays_open(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=2"}))
    bad_frames = [
        "not json",
        "[1, 2]",
        '{"type": "dance"}',
        '{"type": "prompt", "agent": "a", "prompt": "x"}',
        '{"type": "prompt", "request_id": "r", "agent": "nope", "prompt": "x"}',
        '{"type": "prompt", "request_id": "r", "agent": "a", "prompt": 5}',
        '{"type": "prompt", "request_id": "r", "agent": "a"}',
        '{"type": "cancel", "request_id": "never-started"}',
    ]
    async with session.ws_connect(f"{proxy.url}/v1/ws") as ws:
        codes = []
        for raw in bad_frames:
            await ws.send_str(raw)
            frame = orjson.loads((await ws.receive(timeout=5)).data)
            assert frame["type"] == "error"
            codes.append(frame["code"])
        await ws.send_bytes(b"\x00\x01")
        assert orjson.loads((await ws.receive(timeout=5)).data)["code"] == "bad_request"
        # Still usable afterwards.
        await ws.send_str('{"type": "prompt", "request_id": "ok", "agent": "a", "prompt": "x"}')
        frames = await collect(ws, 1)
    assert codes == ["bad_request"] * 4 + ["unknown_agent", "invalid_prompt", "invalid_prompt", "bad_request"]
    assert frames["ok"][-1]["text"] == "tok0 tok1"


async def test_frame_over_the_limit_closes_with_1009(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}, server={"ws_max_frame_bytes": 4096}))
    async with session.ws_connect(f"{proxy.url}/v1/ws") as ws:
        big = orjson.dumps(
            {"type": "prompt", "request_id": "r", "agent": "a", "prompt": "x" * 10_000}
        ).decode()
        await ws.send_str(big)
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        assert ws.close_code == 1009


async def test_duplicate_request_id_is_refused(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=3&gap_ms=100"}))
    async with session.ws_connect(f"{proxy.url}/v1/ws") as ws:
        frame = '{"type": "prompt", "request_id": "r", "agent": "a", "prompt": "x"}'
        await ws.send_str(frame)
        await ws.send_str(frame)
        frames = await collect(ws, 1)
    errors = [f for f in frames["r"] if f["type"] == "error"]
    assert len(errors) == 1 and errors[0]["code"] == "bad_request"
    assert frames["r"][-1]["type"] == "end"


async def test_frames_of_every_length_class_arrive_whole_and_in_order(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    # The proxy frames its text frames itself: lengths under 126 bytes, under 64 KiB and over it
    # have three different headers.
    agents = {"one": "e1?echo=1&chunks=1", "some": "e4?echo=1&chunks=4", "many": "e64?echo=1&chunks=64"}
    prompts = {"one": "x" * 70_000, "some": "y" * 2_000, "many": "z" * 600}
    proxy = await make_proxy(settings_for(mock, agents))
    async with session.ws_connect(f"{proxy.url}/v1/ws", max_msg_size=1 << 20) as ws:
        for agent, prompt in prompts.items():
            frame = {"type": "prompt", "request_id": agent, "agent": agent, "prompt": prompt}
            await ws.send_str(orjson.dumps(frame).decode())
        frames = await collect(ws, 3)
    for agent, prompt in prompts.items():
        assert_stream_invariants(frames[agent])
        text = "".join(f["text"] for f in frames[agent] if f["type"] == "delta")
        assert text == frames[agent][-1]["text"]
        assert prompt in text
