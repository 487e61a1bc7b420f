"""Resumable streams (docs/protocol.md): a client that lost its connection gets the rest of its stream,
every event exactly once and in order, from the stream's log; on the memory backend and on a real
Redis shared by two proxies."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest

from proxy.mock_upstream import MockServer
from tests.conftest import ProxyFactory, settings_for
from tests.support import SSEResult, assert_stream_invariants, read_sse

SLOW = "slow?chunks=40&gap_ms=25"
GRACE = {"grace_s": 10}


@pytest.fixture(params=["memory", "redis"])
def state(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "memory":
        return {}
    redis_state: dict[str, Any] = request.getfixturevalue("redis_state")
    return redis_state


async def leave_after(session: aiohttp.ClientSession, url: str, events: int) -> SSEResult:
    """Start a stream, read `events` events, and drop the connection."""
    async with session.post(url, json={"prompt": "hi"}) as resp:
        seen = await read_sse(resp, stop_after=events)
        assert resp.connection is not None and resp.connection.transport is not None
        resp.connection.transport.abort()
    return seen


def whole(first: SSEResult, rest: SSEResult) -> list[dict[str, Any]]:
    events = [e.data for e in first.events + rest.events if e.event != "heartbeat"]
    assert [e["seq"] for e in events] == list(range(len(events)))  # each exactly once, in order
    assert_stream_invariants(events)
    return events


async def test_a_client_that_left_resumes_with_last_event_id_and_gets_the_rest_once(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession, state: dict[str, Any]
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": SLOW}, state=state, resume=GRACE))
    first = await leave_after(session, f"{proxy.url}/v1/agents/a/stream", events=5)
    last = first.events[-1]
    stream_id = last.data["stream_id"]
    async with session.get(
        f"{proxy.url}/v1/streams/{stream_id}", headers={"Last-Event-ID": last.id or ""}
    ) as r:
        assert r.status == 200
        rest = await read_sse(r)
    events = whole(first, rest)
    assert events[-1]["finish_reason"] == "stop"
    assert events[-1]["text"] == "".join(e["text"] for e in events if e["type"] == "delta")
    assert rest.events[0].id == f"{stream_id}:5"
    assert mock.stats.for_model(SLOW).requests == 1  # resumed, not run again


async def test_after_the_end_the_whole_stream_replays_from_after(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession, state: dict[str, Any]
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "fast?chunks=5"}, state=state))
    async with session.post(f"{proxy.url}/v1/agents/a/stream", json={"prompt": "hi"}) as resp:
        original = await read_sse(resp)
    stream_id = original.end["stream_id"]
    async with session.get(f"{proxy.url}/v1/streams/{stream_id}?after=-1") as resp:
        replay = await read_sse(resp)
    assert [e.data for e in replay.events] == [e.data for e in original.events]
    async with session.get(f"{proxy.url}/v1/streams/{stream_id}?after=3") as resp:
        tail = await read_sse(resp)
    assert [e.data["seq"] for e in tail.events] == list(range(4, len(original.events)))


async def test_an_eventsource_reconnecting_with_last_event_id_resumes_instead_of_paying_twice(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession, state: dict[str, Any]
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": SLOW}, state=state, resume=GRACE))
    url = f"{proxy.url}/v1/agents/a/stream?prompt=hi"
    async with session.get(url) as resp:
        first = await read_sse(resp, stop_after=4)
        assert resp.connection is not None and resp.connection.transport is not None
        resp.connection.transport.abort()
    async with session.get(url, headers={"Last-Event-ID": first.events[-1].id or ""}) as resp:
        rest = await read_sse(resp)
    whole(first, rest)
    assert mock.stats.for_model(SLOW).requests == 1


async def test_an_unresumable_last_event_id_gets_204_and_an_unknown_stream_404(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession, state: dict[str, Any]
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "fast"}, state=state))
    gone = {"Last-Event-ID": "str_doesnotexist:3"}
    async with session.get(f"{proxy.url}/v1/agents/a/stream?prompt=hi", headers=gone) as resp:
        assert resp.status == 204  # tells the browser to stop reconnecting
    async with session.get(f"{proxy.url}/v1/streams/str_doesnotexist") as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "unknown_stream"
    async with session.get(f"{proxy.url}/v1/streams/str_x?after=soon") as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "invalid_after"
    assert mock.stats.for_model("fast").requests == 0


async def test_a_websocket_resume_frame_gets_the_rest_of_the_stream(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession, state: dict[str, Any]
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": SLOW}, state=state, resume=GRACE))
    first = await leave_after(session, f"{proxy.url}/v1/agents/a/stream", events=3)
    stream_id, seq = first.events[-1].data["stream_id"], first.events[-1].data["seq"]
    frames: list[dict[str, Any]] = []
    async with session.ws_connect(f"{proxy.url}/v1/ws") as ws:
        await ws.send_str(
            orjson.dumps(
                {"type": "resume", "request_id": "r9", "stream_id": stream_id, "after_seq": seq}
            ).decode()
        )
        await ws.send_str(
            orjson.dumps({"type": "resume", "request_id": "r10", "stream_id": "str_nope"}).decode()
        )
        async for msg in ws:
            frame = orjson.loads(msg.data)
            frames.append(frame)
            if frame["type"] == "end":
                break
    refused = [f for f in frames if f["request_id"] == "r10"]
    assert [(f["type"], f["code"]) for f in refused] == [("error", "unknown_stream")]
    rest = [f for f in frames if f["request_id"] == "r9" and f["type"] != "heartbeat"]
    assert rest[0]["seq"] == seq + 1 and rest[-1]["type"] == "end"
    assert [f["seq"] for f in rest] == list(range(seq + 1, seq + 1 + len(rest)))


async def test_a_left_stream_runs_through_its_grace_period_then_is_cancelled(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession, state: dict[str, Any]
) -> None:
    model = "slow?chunks=500&gap_ms=20"
    proxy = await make_proxy(settings_for(mock, {"a": model}, state=state, resume={"grace_s": 0.5}))
    first = await leave_after(session, f"{proxy.url}/v1/agents/a/stream", events=3)
    # Nobody comes back: the upstream request is closed after the grace period, not at once.
    await mock.stats.wait_for(lambda s: s.for_model(model).streams_closed_by_client == 1, timeout=5)
    await proxy.engine.wait_idle(2)
    stream_id = first.events[0].data["stream_id"]
    async with session.get(f"{proxy.url}/v1/streams/{stream_id}?after=2") as resp:
        rest = await read_sse(resp)
    assert rest.end["finish_reason"] == "cancelled"
    assert len(rest.of("delta")) > 5  # it went on streaming while it waited


async def test_without_grace_a_left_stream_is_cancelled_at_once_and_its_log_still_ends(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession, state: dict[str, Any]
) -> None:
    model = "slow?chunks=500&gap_ms=20"
    proxy = await make_proxy(settings_for(mock, {"a": model}, state=state))
    first = await leave_after(session, f"{proxy.url}/v1/agents/a/stream", events=3)
    await mock.stats.wait_for(lambda s: s.for_model(model).streams_closed_by_client == 1, timeout=1)
    stream_id = first.events[0].data["stream_id"]
    async with session.get(f"{proxy.url}/v1/streams/{stream_id}?after=-1") as resp:
        replay = await read_sse(resp)
    assert replay.types()[0] == "start" and replay.end["finish_reason"] == "cancelled"


@pytest.mark.parametrize("seen", [2, 1], ids=["after-a-delta", "the-moment-it-has-start"])
async def test_a_stream_started_on_one_proxy_is_followed_live_on_another(
    mock: MockServer,
    make_proxy: ProxyFactory,
    session: aiohttp.ClientSession,
    redis_state: dict[str, Any],
    seen: int,
) -> None:
    # The owner writes a stream's start to Redis with its next batch, milliseconds after the client
    # has it; a follower that comes first looks again before it calls the stream unknown.
    settings = settings_for(mock, {"a": SLOW}, state=redis_state, resume=GRACE)
    one, other = await make_proxy(settings), await make_proxy(settings)
    first = await leave_after(session, f"{one.url}/v1/agents/a/stream", events=seen)
    assert first.events[0].event == "start"
    last = first.events[-1]
    async with session.get(
        f"{other.url}/v1/streams/{last.data['stream_id']}", headers={"Last-Event-ID": last.id or ""}
    ) as resp:
        assert resp.status == 200
        rest = await read_sse(resp)
    whole(first, rest)
    assert mock.stats.for_model(SLOW).requests == 1
