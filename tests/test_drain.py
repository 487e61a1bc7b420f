"""Drain on SIGTERM with a real `agent-proxy serve` process and streams in flight."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import aiohttp

from proxy.mock_upstream import MockServer
from tests.conftest import wait_until
from tests.serving import serve
from tests.support import assert_stream_invariants, read_sse

CONFIG = """
[server]
drain_timeout_s = 1.5
heartbeat_interval_s = 60

[upstreams.mock]
base_url = "{base_url}"

[agents.short]
model = "mock:short?chunks=8&gap_ms=100"

[agents.long]
model = "mock:long?chunks=1000&gap_ms=50"
"""


async def test_sigterm_drains_then_ends_the_rest_with_shutdown_and_exits_0(
    tmp_path: Path, mock: MockServer, session: aiohttp.ClientSession
) -> None:
    config = tmp_path / "proxy.toml"
    config.write_text(CONFIG.format(base_url=mock.base_url))
    async with serve("--config", str(config)) as served:

        async def stream(agent: str) -> list[dict[str, object]]:
            async with session.post(f"{served.url}/v1/agents/{agent}/stream", json={"prompt": "x"}) as resp:
                return [e.data for e in (await read_sse(resp)).events]

        short = asyncio.create_task(stream("short"))
        long = asyncio.create_task(stream("long"))
        await mock.stats.wait_for(lambda s: s.total.streams_started == 2, timeout=10)
        served.process.send_signal(signal.SIGTERM)

        async with asyncio.timeout(5):
            while True:
                async with session.get(f"{served.url}/readyz") as resp:
                    if resp.status == 503:
                        break
        async with session.post(f"{served.url}/v1/agents/short/stream", json={"prompt": "x"}) as resp:
            assert resp.status == 503
            assert (await resp.json())["error"]["code"] == "draining"

        short_events, long_events = await asyncio.gather(short, long)
        async with asyncio.timeout(10):
            assert await served.process.wait() == 0

    assert short_events[-1]["finish_reason"] == "stop"
    assert short_events[-1]["text"] == " ".join(f"tok{i}" for i in range(8))
    assert long_events[-1]["finish_reason"] == "shutdown"
    assert_stream_invariants(short_events)
    assert_stream_invariants(long_events)
    await mock.stats.wait_for(lambda s: s.total.active_streams == 0, timeout=2)


async def test_sigterm_closes_websockets_with_1001_after_their_streams_end_within_the_drain_timeout(
    tmp_path: Path, mock: MockServer, session: aiohttp.ClientSession
) -> None:
    config = tmp_path / "proxy.toml"
    config.write_text(CONFIG.format(base_url=mock.base_url).replace("1.5", "3"))
    async with serve("--config", str(config)) as served:
        idle = await session.ws_connect(f"{served.url}/v1/ws")
        busy = await session.ws_connect(f"{served.url}/v1/ws")
        await busy.send_json({"type": "prompt", "request_id": "r1", "agent": "long", "prompt": "x"})
        await mock.stats.wait_for(lambda s: s.total.streams_started == 1, timeout=10)
        loop = asyncio.get_running_loop()
        signalled = loop.time()
        served.process.send_signal(signal.SIGTERM)

        async def frames(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, object]]:
            return [msg.json() async for msg in ws if msg.type is aiohttp.WSMsgType.TEXT]

        async with asyncio.timeout(10):
            idle_frames, busy_frames = await asyncio.gather(frames(idle), frames(busy))
            assert await served.process.wait() == 0
        exited_after = loop.time() - signalled

    assert idle_frames == []
    assert idle.close_code == busy.close_code == 1001
    assert busy_frames[-1]["type"] == "end"
    assert busy_frames[-1]["finish_reason"] == "shutdown"
    assert_stream_invariants([{k: v for k, v in f.items() if k != "request_id"} for f in busy_frames])
    assert 3 <= exited_after < 3 + 1, exited_after


async def test_a_third_ctrl_c_quits_at_once_without_waiting_for_the_drain(
    tmp_path: Path, mock: MockServer, session: aiohttp.ClientSession
) -> None:
    config = tmp_path / "proxy.toml"
    config.write_text(CONFIG.format(base_url=mock.base_url).replace("1.5", "60"))
    async with (
        serve("--config", str(config)) as served,
        session.post(f"{served.url}/v1/agents/long/stream", json={"prompt": "x"}) as resp,
    ):
        await read_sse(resp, stop_after=2)

        def logged(hint: str) -> Callable[[], bool]:
            return lambda: any(hint in line for line in served.log)

        for hint in ("Ctrl-C twice more", "Ctrl-C once more"):
            served.process.send_signal(signal.SIGINT)
            await wait_until(logged(hint), timeout=10)
        loop = asyncio.get_running_loop()
        interrupted = loop.time()
        served.process.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            assert await served.process.wait() == 128 + signal.SIGINT
        assert loop.time() - interrupted < 1
