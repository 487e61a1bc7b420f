"""Stats as tests read them: counters, client disconnects, `wait_for`, the `/_mock` endpoints, 400s."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest

from proxy.mock_upstream import MockBehaviour, MockServer, MockStats, start_mock

from .sse import USER, Streamed, chat_body, stream_chat


async def test_client_abort_mid_stream(session: aiohttp.ClientSession, mock: MockServer) -> None:
    model = "slow?chunks=200&gap_ms=20"
    out = Streamed(0, {}, 0.0, 0.0)
    async with session.post(f"{mock.base_url}/chat/completions", json=chat_body(model)) as response:
        async for line in response.content:
            if line.startswith(b"data: "):
                out.data.append(line.decode())
                if len(out.data) == 2:
                    break
        await mock.stats.wait_for(lambda s: s.for_model(model).active_streams == 1, 5)
        response.close()
    await mock.stats.wait_for(lambda s: s.total.streams_closed_by_client == 1, 5)
    counters = mock.stats.for_model(model)
    assert (counters.streams_started, counters.streams_completed, counters.active_streams) == (1, 0, 0)


async def test_client_abort_during_ttfc_wait(session: aiohttp.ClientSession, mock: MockServer) -> None:
    task = asyncio.create_task(stream_chat(session, mock, "late?ttfc_ms=60000"))
    await mock.stats.wait_for(lambda s: s.total.active_streams == 1, 5)
    task.cancel()
    await mock.stats.wait_for(lambda s: s.total.streams_closed_by_client == 1, 5)
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_non_streaming_abandoned(session: aiohttp.ClientSession, mock: MockServer) -> None:
    task = asyncio.create_task(
        session.post(f"{mock.base_url}/chat/completions", json={"model": "w?ttfc_ms=60000", "messages": USER})
    )
    await mock.stats.wait_for(lambda s: s.total.requests == 1, 5)
    task.cancel()
    await mock.stats.wait_for(lambda s: s.total.responses_closed_by_client == 1, 5)


async def test_counters_add_up(session: aiohttp.ClientSession, mock: MockServer) -> None:
    for model in ("a", "a", "b?fault=drop&after=1", "c?fault=http500"):
        with contextlib.suppress(aiohttp.ClientPayloadError):
            await stream_chat(session, mock, model)
    async with session.post(f"{mock.base_url}/chat/completions", json={"model": "a", "messages": USER}) as r:
        assert r.status == 200
    await mock.stats.wait_for(lambda s: s.total.active_streams == 0, 5)
    t = mock.stats.total
    assert (t.requests, t.faults_injected, t.streams_started, t.streams_completed, t.streams_faulted) == (
        5,
        2,
        3,
        2,
        1,
    )
    assert t.responses_completed == 1
    assert t.streams_started == t.streams_completed + t.streams_faulted + t.streams_closed_by_client
    assert mock.stats.for_model("a").requests == 3
    assert mock.stats.for_model("never").requests == 0


async def test_stats_and_reset_endpoints(session: aiohttp.ClientSession, mock: MockServer) -> None:
    model = "f?fault=http500&fault_times=1"
    assert (await stream_chat(session, mock, model)).status == 500
    assert (await stream_chat(session, mock, model)).status == 200
    async with session.get(f"{mock.url}/_mock/stats") as response:
        snap = await response.json()
    assert snap["total"]["requests"] == 2
    assert snap["models"][model]["faults_injected"] == 1
    assert snap["last_request_bodies"][-1]["model"] == model
    async with session.post(f"{mock.url}/_mock/reset") as response:
        assert response.status == 200
    assert mock.stats.snapshot()["total"]["requests"] == 0
    assert (await stream_chat(session, mock, model)).status == 500  # fault counter restarted


async def test_authorization_and_bounded_bodies(session: aiohttp.ClientSession, mock: MockServer) -> None:
    for i in range(55):
        async with session.post(
            f"{mock.base_url}/chat/completions",
            json={"model": f"m{i}", "messages": USER},
            headers={"Authorization": f"Bearer key-{i}"},
        ) as response:
            assert response.status == 200
    bodies = mock.stats.last_request_bodies
    assert len(bodies) == 50
    assert bodies[0]["model"] == "m5"
    assert bodies[-1]["model"] == "m54"
    assert mock.stats.last_authorization == "Bearer key-54"


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        (b"{not json", None),
        (b'{"messages": []}', "model"),
        (b'{"model": "m", "messages": "hi"}', "messages"),
        (b'{"model": "m?chunks=many", "messages": []}', "chunks"),
        (b'{"model": "m?tpyo=1", "messages": []}', "tpyo"),
    ],
)
async def test_bad_requests(
    session: aiohttp.ClientSession, mock: MockServer, payload: bytes, param: str | None
) -> None:
    async with session.post(
        f"{mock.base_url}/chat/completions", data=payload, headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    if param:
        assert param in error["message"]
    assert mock.stats.total.bad_requests == 1


async def test_wait_for_times_out_with_snapshot() -> None:
    stats = MockStats()
    with pytest.raises(TimeoutError, match="streams_completed"):
        await stats.wait_for(lambda s: s.total.streams_completed > 0, 0.05)
    assert not stats._waiters


async def test_server_defaults() -> None:
    async with (
        await start_mock(defaults=MockBehaviour(chunks=2, text="ab")) as server,
        aiohttp.ClientSession() as session,
    ):
        out = await stream_chat(session, server, "plain")
        assert out.contents == ["a", "b"]
        out = await stream_chat(session, server, "override?chunks=1")
        assert out.contents == ["ab"]
