"""The shipped nginx config (deploy/nginx/agent-proxy.conf) with a real nginx in front of real
`agent-proxy serve` processes and a mock upstream process, all on loopback ports of this machine.

(a) SSE, WebSocket and the openai SDK stream through it chunk by chunk: the first delta reaches the
    client while the upstream is still sending, and the deltas arrive spread over the stream.
(b) With proxy_read_timeout at 2 s and an upstream silent for 6 s, heartbeats every 0.5 s keep the
    stream open to its end; with heartbeats off (an interval of an hour) nginx cuts it after 2 s.
(c) A rolling restart: one of two replicas gets SIGTERM under a steady, bounded load of streams.
    Nothing fails: a request sent after the signal that reached the draining replica was refused
    with 503 and retried by nginx on the other one; every running stream ends with `end`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from tests.serving import Served, serve
from tests.support import SSEEvent, assert_stream_invariants, parse_sse_block

from .conftest import MockUpstream, mock_upstream_process, run_nginx

pytestmark = pytest.mark.timeout(150)

PACED_CHUNKS = 30
AGENTS = {
    # 30 chunks 50 ms apart: 1.5 s of upstream sending.
    "paced": f"paced?chunks={PACED_CHUNKS}&gap_ms=50",
    # Nothing for 6 s after the headers, then three chunks.
    "silent": "silent?ttfc_ms=6000&chunks=3",
    # The rolling restart's load: short streams, and long ones that outlive the drain.
    "short": "short?chunks=10&gap_ms=50",
    "long": "long?chunks=100&gap_ms=50",
}
HEARTBEATS_OFF = 3600.0
"""`[server] heartbeat_interval_s` has no off switch; an hour is longer than any test stream."""


def proxy_config(mock: MockUpstream, heartbeat_s: float, drain_s: float = 5.0) -> str:
    agents = "".join(f'[agents.{name}]\nmodel = "mock:{model}"\n' for name, model in AGENTS.items())
    return (
        f"[server]\nheartbeat_interval_s = {heartbeat_s}\ndrain_timeout_s = {drain_s}\n"
        f'[upstreams.mock]\nbase_url = "{mock.base_url}"\n{agents}'
    )


@contextlib.asynccontextmanager
async def replicas(config: Path, count: int) -> AsyncIterator[list[Served]]:
    """`count` `agent-proxy serve` processes with one config, started side by side."""
    async with contextlib.AsyncExitStack() as stack:
        yield list(
            await asyncio.gather(
                *(stack.enter_async_context(serve("--config", str(config))) for _ in range(count))
            )
        )


def address(served: Served) -> str:
    return served.url.removeprefix("http://")


@dataclass
class Streamed:
    status: int
    events: list[SSEEvent] = field(default_factory=list)
    cut: BaseException | None = None
    sent_at: float = 0.0

    @property
    def data(self) -> list[dict[str, Any]]:
        return [e.data for e in self.events]

    def of(self, kind: str) -> list[SSEEvent]:
        return [e for e in self.events if e.event == kind]


async def sse(
    session: aiohttp.ClientSession,
    url: str,
    agent: str,
    on_event: Callable[[SSEEvent], Awaitable[None]] | None = None,
) -> Streamed:
    """POST a stream and read it as it arrives; a connection cut mid-body is recorded, not raised."""
    result = Streamed(0, sent_at=time.monotonic())
    async with session.post(f"{url}/v1/agents/{agent}/stream", json={"prompt": "hello"}) as resp:
        result.status = resp.status
        if resp.status != 200:
            return result
        buf = b""
        try:
            async for chunk in resp.content.iter_any():
                buf += chunk
                while b"\n\n" in buf:
                    block, buf = buf.split(b"\n\n", 1)
                    if (event := parse_sse_block(block, time.monotonic())) is not None:
                        result.events.append(event)
                        if on_event is not None:
                            await on_event(event)
        except aiohttp.ClientPayloadError as exc:
            result.cut = exc
    return result


# --- (a) chunk by chunk --------------------------------------------------------------------------


class UpstreamStillSending:
    """Records, when the client sees its first delta, whether the mock upstream was still sending
    that very stream (its stream open, none completed since the client asked)."""

    def __init__(self, mock: MockUpstream, session: aiohttp.ClientSession) -> None:
        self.mock, self.session = mock, session
        self.completed_before = -1
        self.at_first_delta: dict[str, int] | None = None

    async def begin(self) -> None:
        self.completed_before = (await self.mock.stats(self.session))["streams_completed"]
        self.at_first_delta = None

    async def first_delta(self) -> None:
        if self.at_first_delta is None:
            self.at_first_delta = await self.mock.stats(self.session)

    def check(self, arrivals: list[float]) -> None:
        stats = self.at_first_delta
        assert stats is not None, "no delta arrived"
        assert stats["active_streams"] == 1 and stats["streams_completed"] == self.completed_before, stats
        assert len(arrivals) == PACED_CHUNKS
        # 29 gaps of 50 ms upstream; buffered by nginx, they would arrive in one lump at the end.
        assert arrivals[-1] - arrivals[0] > 1.0, arrivals


async def test_sse_websocket_and_openai_sdk_stream_through_nginx_chunk_by_chunk(tmp_path: Path) -> None:
    async with (
        mock_upstream_process() as mock,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
    ):
        config = tmp_path / "proxy.toml"
        config.write_text(proxy_config(mock, heartbeat_s=15))
        async with (
            replicas(config, 2) as served,
            run_nginx(tmp_path / "nginx", [address(s) for s in served]) as nginx,
        ):
            upstream = UpstreamStillSending(mock, session)

            await upstream.begin()

            async def on_event(event: SSEEvent) -> None:
                if event.event == "delta":
                    await upstream.first_delta()

            result = await sse(session, nginx.url, "paced", on_event)
            assert result.cut is None and result.events[-1].event == "end"
            upstream.check([e.at for e in result.of("delta")])

            await upstream.begin()
            arrivals: list[float] = []
            async with session.ws_connect(f"{nginx.url}/v1/ws") as ws:
                await ws.send_json({"type": "prompt", "request_id": "r1", "agent": "paced", "prompt": "hi"})
                while (frame := orjson.loads((await ws.receive(timeout=10)).data))["type"] != "end":
                    if frame["type"] == "delta":
                        arrivals.append(time.monotonic())
                        await upstream.first_delta()
            upstream.check(arrivals)

            await upstream.begin()
            arrivals = []
            client = openai.AsyncOpenAI(
                base_url=f"{nginx.url}/v1", api_key="unused", max_retries=0, timeout=30
            )
            try:
                stream = await client.chat.completions.create(
                    model="paced", messages=[{"role": "user", "content": "hi"}], stream=True
                )
                async for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        arrivals.append(time.monotonic())
                        await upstream.first_delta()
            finally:
                await client.close()
            upstream.check(arrivals)

        # Round robin: the streams went through both replicas.
        assert {line.split()[1] for line in nginx.access_log()} == {address(s) for s in served}


# --- (b) heartbeats ------------------------------------------------------------------------------


async def test_heartbeats_keep_a_silent_stream_open_through_nginx_and_without_them_nginx_cuts_it(
    tmp_path: Path,
) -> None:
    async with (
        mock_upstream_process() as mock,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
    ):
        beating, silent = tmp_path / "beating.toml", tmp_path / "silent.toml"
        beating.write_text(proxy_config(mock, heartbeat_s=0.5))
        silent.write_text(proxy_config(mock, heartbeat_s=HEARTBEATS_OFF))
        async with (
            replicas(beating, 1) as [with_heartbeats],
            replicas(silent, 1) as [without_heartbeats],
            # Both upstream `server` lines point at the one replica of each.
            run_nginx(tmp_path / "nginx-a", [address(with_heartbeats)] * 2, read_timeout="2s") as nginx_a,
            run_nginx(tmp_path / "nginx-b", [address(without_heartbeats)] * 2, read_timeout="2s") as nginx_b,
        ):
            kept, cut = await asyncio.gather(
                sse(session, nginx_a.url, "silent"), sse(session, nginx_b.url, "silent")
            )

    assert kept.status == 200 and kept.cut is None
    assert kept.events[-1].data["finish_reason"] == "stop"
    assert_stream_invariants(kept.data)
    assert len(kept.of("heartbeat")) >= 8, kept.data
    gaps = [b.at - a.at for a, b in zip(kept.events, kept.events[1:], strict=False)]
    assert max(gaps) < 2.0, gaps

    assert cut.status == 200 and cut.cut is not None, cut.data
    assert [e.event for e in cut.events] == ["start"]  # no delta, no end: cut while the model was silent
    assert "upstream timed out" in nginx_b.error_log()
    assert "upstream timed out" not in nginx_a.error_log()


# --- (c) rolling restart -------------------------------------------------------------------------

WORKERS = 6
SHORT_STREAMS = 60
LONG_STREAMS = 4
SHORT_BEFORE_SIGNAL = 12


async def test_rolling_restart_behind_nginx_fails_no_request_and_cuts_no_stream(tmp_path: Path) -> None:
    async with (
        mock_upstream_process() as mock,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
    ):
        config = tmp_path / "proxy.toml"
        config.write_text(proxy_config(mock, heartbeat_s=0.5, drain_s=2))
        async with (
            replicas(config, 2) as served,
            run_nginx(tmp_path / "nginx", [address(s) for s in served]) as nginx,
        ):
            stopped, survivor = served
            started = asyncio.Event()
            enough = asyncio.Event()
            signal_time = 0.0
            long_started = 0

            async def on_long_event(event: SSEEvent) -> None:
                nonlocal long_started
                if event.event == "start":
                    long_started += 1
                    if long_started == LONG_STREAMS:
                        started.set()

            short: list[Streamed] = []
            launched = 0

            async def worker() -> None:
                nonlocal launched
                while launched < SHORT_STREAMS:
                    launched += 1
                    short.append(await sse(session, nginx.url, "short"))
                    if len(short) >= SHORT_BEFORE_SIGNAL:
                        enough.set()

            async with asyncio.timeout(90):
                # Sent one after another, round robin puts two long streams on each replica.
                longs = [
                    asyncio.create_task(sse(session, nginx.url, "long", on_long_event))
                    for _ in range(LONG_STREAMS)
                ]
                await started.wait()
                workers = [asyncio.create_task(worker()) for _ in range(WORKERS)]
                await enough.wait()
                stopped.process.send_signal(signal.SIGTERM)
                signal_time = time.monotonic()
                await asyncio.gather(*workers)
                long_results = await asyncio.gather(*longs)
                exit_code = await stopped.process.wait()
            retried = [line for line in nginx.access_log() if "," in line]
            survivor_serving = survivor.process.returncode is None

    everything = [*short, *long_results]
    after_signal = [s for s in short if s.sent_at > signal_time]
    finish = {str(s.events[-1].data.get("finish_reason")) for s in everything if s.events}
    summary = (
        f"{len(everything)} streams ({len(after_signal)} sent after SIGTERM), finish reasons "
        f"{sorted(finish)}, {len(retried)} retried by nginx: {retried}"
    )
    print(summary)
    assert exit_code == 0
    assert all(s.status == 200 and s.cut is None for s in everything), summary
    for s in everything:
        assert_stream_invariants(s.data)  # one start, one end last, no gap in seq
    assert all(s.events[-1].data["finish_reason"] == "stop" for s in after_signal), summary
    assert len(after_signal) >= 10, summary
    shutdown = [s for s in long_results if s.events[-1].data["finish_reason"] == "shutdown"]
    assert shutdown, f"no stream was running on the drained replica: {summary}"
    assert all(s.events[-1].data["finish_reason"] in {"stop", "shutdown"} for s in long_results)
    # The draining replica refused at least one new stream, and nginx sent it to the other one.
    assert any(line.startswith("200 ") and "503, " in line for line in retried), summary
    assert survivor_serving
