"""Each wire client measures what a scripted server did: TTFT, gaps, chunks, retries, heartbeats, errors."""

from __future__ import annotations

import socket
import statistics

import pytest

from proxy.loadtest import LoadConfig, LoadResult, run_load
from proxy.loadtest.config import Target

from .loadtest_fixture import Fixture

# The server sleeps 50 ms before the first chunk, then 10 ms between 5 chunks.
SHAPED = "ttfb_ms=50 chunks=5 gap_ms=10 heartbeat=2 retry=1"
# Waking up early is impossible; late is bounded loosely, since other tests may share the machine.
SLACK_S = 0.06


def _cfg(fx: Fixture, target: Target, prompt: str, **kw: object) -> LoadConfig:
    base: dict[str, object] = {
        "url": fx.url,
        "target": target,
        "prompts": [prompt],
        "requests": 4,
        "concurrency": 2,
        "timeout_s": 5.0,
    }
    base.update(kw)
    return LoadConfig(**base)  # type: ignore[arg-type]


def _assert_shaped(result: LoadResult, *, retries: int, heartbeats: int) -> None:
    assert result.errors == {}
    assert (result.ok, result.total) == (4, 4)
    for rec in result.records:
        ttft, e2e, itl = rec.ttft_s, rec.e2e_s, rec.itl_mean_s
        assert ttft is not None and e2e is not None and itl is not None
        assert 0.049 <= ttft <= 0.05 + SLACK_S
        assert rec.chunks == 5
        assert len(rec.gaps) == 4
        assert 0.0095 <= statistics.mean(rec.gaps) <= 0.01 + SLACK_S / 4
        assert sum(rec.gaps) == pytest.approx(rec.last_content - rec.first_content)  # type: ignore[operator]
        assert e2e >= ttft + sum(rec.gaps)
        assert itl == pytest.approx((e2e - ttft) / 4)
        assert rec.retries == retries
        assert rec.heartbeats == heartbeats
        assert rec.output_tokens == 5 and rec.input_tokens == 3
        assert rec.finish_reason == "stop"
    assert result.itl["count"] == 16
    assert 0.0095 <= result.itl["p50"] <= 0.01 + SLACK_S / 4
    assert result.chunks == 20 and result.tokens == 20
    assert result.retries == 4 * retries and result.heartbeats == 4 * heartbeats


async def test_sse_target_measures_ttft_gaps_chunks_retries_heartbeats(fixture_server: Fixture) -> None:
    result = await run_load(_cfg(fixture_server, "sse", SHAPED))
    _assert_shaped(result, retries=1, heartbeats=2)
    assert {r.status for r in result.records} == {200}


async def test_ws_target_measures_the_same_over_one_socket_per_request(fixture_server: Fixture) -> None:
    result = await run_load(_cfg(fixture_server, "ws", SHAPED))
    _assert_shaped(result, retries=1, heartbeats=2)
    # Closed loop of 2 with one stream per socket: two sockets, reused for the 4 requests.
    assert fixture_server.stats.ws_connections == 2


async def test_ws_target_multiplexes_requests_per_socket(fixture_server: Fixture) -> None:
    cfg = _cfg(
        fixture_server,
        "ws",
        "ttfb_ms=30 chunks=3 gap_ms=5",
        concurrency=4,
        requests=12,
        ws_streams_per_socket=2,
    )
    result = await run_load(cfg)
    assert (result.ok, result.total) == (12, 12)
    assert fixture_server.stats.ws_connections == 2
    assert fixture_server.stats.max_active == 4


async def test_openai_target_counts_keepalives_and_usage_and_skips_the_role_chunk(
    fixture_server: Fixture,
) -> None:
    result = await run_load(_cfg(fixture_server, "openai", SHAPED))
    # OpenAI streams carry no retry events (retries are transparent); keepalive comments are heartbeats.
    _assert_shaped(result, retries=0, heartbeats=2)


async def test_openai_target_accepts_a_base_url_ending_in_v1(fixture_server: Fixture) -> None:
    result = await run_load(_cfg(fixture_server, "openai", "chunks=2", url=fixture_server.url + "/v1"))
    assert result.ok == 4


@pytest.mark.parametrize("target", ["sse", "ws"])
async def test_output_events_count_as_content(fixture_server: Fixture, target: Target) -> None:
    result = await run_load(_cfg(fixture_server, target, "chunks=3 output=1"))
    assert result.ok == 4
    assert all(r.chunks == 3 for r in result.records)


@pytest.mark.parametrize(
    ("target", "prompt", "kind"),
    [
        ("sse", "status=503", "http_503"),
        ("openai", "status=429", "http_429"),
        ("sse", "chunks=2 error=upstream_failed", "upstream_failed"),
        ("ws", "chunks=2 error=upstream_failed", "upstream_failed"),
        ("openai", "chunks=2 error=upstream_failed", "upstream_failed"),
        ("sse", "chunks=2 truncate=1", "truncated"),
        ("openai", "chunks=2 truncate=1", "truncated"),
        ("ws", "chunks=2 close_ws=1", "truncated"),
    ],
)
async def test_failures_are_counted_by_kind(
    fixture_server: Fixture, target: Target, prompt: str, kind: str
) -> None:
    result = await run_load(_cfg(fixture_server, target, prompt))
    assert result.errors == {kind: 4}
    assert result.ok == 0
    assert result.ttft == {"count": 0}
    for rec in result.records:
        assert rec.error == kind
        assert rec.e2e_s is not None and rec.e2e_s < 5.0
        if "chunks=2" in prompt:
            assert rec.chunks == 2  # what arrived before the failure is still counted


@pytest.mark.parametrize("target", ["sse", "ws", "openai"])
async def test_a_refused_connection_is_a_connect_error(target: Target) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = LoadConfig(url=f"http://127.0.0.1:{port}", target=target, requests=3, concurrency=1)
    result = await run_load(cfg)
    assert result.errors == {"connect": 3}


@pytest.mark.parametrize("target", ["sse", "ws", "openai"])
async def test_a_stream_that_outlives_the_timeout_is_a_timeout(
    fixture_server: Fixture, target: Target
) -> None:
    result = await run_load(_cfg(fixture_server, target, "chunks=1 stall=1", timeout_s=0.2, requests=2))
    assert result.errors == {"timeout": 2}
    for rec in result.records:
        assert rec.chunks == 1
        assert rec.e2e_s is not None and 0.2 <= rec.e2e_s < 1.0
    if target == "ws":
        # The WS client tells the server it gave up on the request.
        assert sorted(fixture_server.stats.cancels) == ["r0", "r1"]


@pytest.mark.parametrize("target", ["sse", "ws"])
async def test_a_discarding_retry_is_counted_with_what_it_discarded(
    fixture_server: Fixture, target: Target
) -> None:
    result = await run_load(_cfg(fixture_server, target, "restart=2 chunks=3", requests=2))
    assert result.ok == 2
    for rec in result.records:
        assert (rec.chunks, rec.discarded_chunks, rec.retries) == (5, 2, 1)
