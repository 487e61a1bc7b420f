"""Two replicas sharing one real Redis, as `agent-proxy serve` processes: a stream survives the
death of the process that runs it, and the proxy rides out Redis going away."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp

from proxy.mock_upstream import MockServer
from tests.redis_server import RedisServer
from tests.serving import serve
from tests.support import read_sse

SLOW = "slow?chunks=60&gap_ms=50"


def config(tmp_path: Path, mock: MockServer, state: dict[str, Any]) -> Path:
    path = tmp_path / "replica.toml"
    path.write_text(
        "[server]\nheartbeat_interval_s = 0.5\n"
        "[state]\n" + "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in state.items())
        + f'[upstreams.mock]\nbase_url = "{mock.base_url}"\n'
        + f'[agents.a]\nmodel = "mock:{SLOW}"\n'
    )  # fmt: skip
    return path


async def test_a_stream_whose_process_is_killed_is_taken_over_and_ends_once_whole(
    mock: MockServer, redis_state: dict[str, Any], tmp_path: Path
) -> None:
    path = config(tmp_path, mock, redis_state)
    async with (
        serve("--config", str(path)) as owner,
        serve("--config", str(path)) as other,
        aiohttp.ClientSession() as session,
    ):
        original = await session.post(f"{owner.url}/v1/agents/a/stream", json={"prompt": "hi"})
        first = await read_sse(original, stop_after=4)
        last = first.events[-1]
        stream_id = last.data["stream_id"]
        resume = {"Last-Event-ID": last.id or ""}
        follow = await session.get(f"{other.url}/v1/streams/{stream_id}", headers=resume)
        assert follow.status == 200

        owner.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await owner.process.wait()
        original.close()
        rest = await read_sse(follow)

    events = [e.data for e in rest.events if e.event != "heartbeat"]
    after = last.data["seq"]
    assert [e["seq"] for e in events] == list(range(after + 1, after + 1 + len(events)))
    retries = [e for e in events if e["type"] == "retry" and e["reason"] == "replica_lost"]
    assert len(retries) == 1 and retries[0]["discard"] is True
    assert [e["type"] for e in events].count("end") == 1 and events[-1]["type"] == "end"
    after_discard = events[events.index(retries[0]) + 1 :]
    text = "".join(e["text"] for e in after_discard if e["type"] == "delta")
    assert events[-1]["finish_reason"] == "stop" and events[-1]["text"] == text
    assert text.startswith("tok0 tok1")  # the whole answer again, not the tail of the lost one
    assert mock.stats.for_model(SLOW).requests == 2

    first_new = next(
        e for e in rest.events if e.data.get("type") == "delta" and e.data["seq"] > retries[0]["seq"]
    )
    print(f"kill -9 -> first new delta on the other replica: {first_new.at - killed_at:.2f} s")
    assert first_new.at - killed_at < 10

    # The replica that took the stream over says so, and how it ended, in its log.
    lines = [json.loads(line) for line in other.log if line.startswith("{")]
    taken = [x for x in lines if x.get("stream_id") == stream_id]
    assert [x["event"] for x in taken] == ["stream_taken_over", "takeover_finished"]
    assert taken[0]["agent"] == "a" and taken[0]["after_seq"] == after
    assert taken[1]["outcome"] == "stop" and taken[1]["model"] == f"mock:{SLOW}" and taken[1]["attempts"] == 1


async def test_redis_going_away_gives_503_state_unavailable_and_service_returns_with_it(
    mock: MockServer, redis_state: dict[str, Any], redis_server: RedisServer, tmp_path: Path
) -> None:
    path = config(tmp_path, mock, {**redis_state, "timeout_s": 0.5})
    async with serve("--config", str(path)) as proxy, aiohttp.ClientSession() as session:
        async with session.post(f"{proxy.url}/v1/agents/a/run", json={"prompt": "hi"}) as resp:
            assert resp.status == 200
            conversation = (await resp.json())["conversation_id"]
        redis_server.stop()
        try:
            async with asyncio.timeout(10):
                while True:  # the health check notices within about a second
                    async with session.get(f"{proxy.url}/readyz") as resp:
                        if resp.status == 503:
                            break
                    await asyncio.sleep(0.1)
            started = time.monotonic()
            async with session.post(f"{proxy.url}/v1/agents/a/stream", json={"prompt": "hi"}) as resp:
                assert resp.status == 503
                assert (await resp.json())["error"]["code"] == "state_unavailable"
                assert resp.headers["Retry-After"] == "1"
            assert time.monotonic() - started < 2  # refused quickly, never a hang
        finally:
            redis_server.start()  # empty: it keeps nothing across a restart
        async with asyncio.timeout(10):
            while True:
                async with session.get(f"{proxy.url}/readyz") as resp:
                    if resp.status == 200:
                        break
                await asyncio.sleep(0.1)
        body = {"prompt": "again", "conversation_id": conversation}
        async with session.post(f"{proxy.url}/v1/agents/a/run", json=body) as resp:
            assert resp.status == 404  # lost with the restart, as if it had expired
            assert (await resp.json())["error"]["code"] == "unknown_conversation"
        async with session.post(f"{proxy.url}/v1/agents/a/run", json={"prompt": "hi"}) as resp:
            assert resp.status == 200
            conversation = (await resp.json())["conversation_id"]
        assert conversation is not None  # stored: the writes reach the new Redis at the first try
        body = {"prompt": "again", "conversation_id": conversation}
        async with session.post(f"{proxy.url}/v1/agents/a/run", json=body) as resp:
            assert resp.status == 200
        assert proxy.process.returncode is None
