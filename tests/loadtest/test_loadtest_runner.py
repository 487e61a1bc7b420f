"""Load shapes and bounds: open-loop schedules, coordinated omission, bounds, warm-up, hard stop."""

from __future__ import annotations

import gc
import itertools
import time

import pytest

from proxy.loadtest import LiveStats, LoadConfig, run_load
from proxy.loadtest.schedule import arrival_offsets

from .loadtest_fixture import Fixture


def _cfg(fx: Fixture, prompt: str = "chunks=2", **kw: object) -> LoadConfig:
    base: dict[str, object] = {"url": fx.url, "target": "sse", "prompts": [prompt], "timeout_s": 5.0}
    base.update(kw)
    return LoadConfig(**base)  # type: ignore[arg-type]


async def test_open_loop_sends_on_the_constant_schedule(fixture_server: Fixture) -> None:
    result = await run_load(_cfg(fixture_server, rate=100.0, requests=6))
    intended = [r.intended for r in result.records]
    assert intended == pytest.approx([0.0, 0.01, 0.02, 0.03, 0.04, 0.05], abs=1e-9)
    for rec in result.records:
        assert rec.sent is not None and 0.0 <= rec.sent - rec.intended < 0.05


async def test_poisson_schedule_with_a_seed_is_reproducible_across_runs(fixture_server: Fixture) -> None:
    cfg = _cfg(fixture_server, rate=200.0, arrival="poisson", seed=42, requests=8)
    first = [r.intended for r in (await run_load(cfg)).records]
    second = [r.intended for r in (await run_load(cfg)).records]
    expected = list(itertools.islice(arrival_offsets(200.0, "poisson", seed=42), 8))
    assert first == pytest.approx(expected, abs=1e-9)
    assert second == pytest.approx(expected, abs=1e-9)


async def test_open_loop_latency_includes_queueing_from_the_intended_time(fixture_server: Fixture) -> None:
    # 20 req/s offered, one slot, 100 ms per request: request k waits about 50 ms * k for its slot.
    cfg = _cfg(fixture_server, "ttfb_ms=100 chunks=1", rate=20.0, requests=6, max_in_flight=1)
    result = await run_load(cfg)
    assert result.ok == 6
    e2e = [r.e2e_s or 0.0 for r in result.records]
    lags = [r.send_lag_s or 0.0 for r in result.records]
    assert e2e[0] == pytest.approx(0.1, abs=0.06)
    # The last one was meant to go at 0.25 s but could only go at about 0.5 s.
    assert e2e[-1] >= 0.1 + 5 * 0.05 - 0.01
    assert lags[-1] >= 5 * 0.05 - 0.01
    assert e2e == sorted(e2e)
    assert result.send_lag["max"] >= 0.24


async def test_requests_bound_sends_exactly_that_many(fixture_server: Fixture) -> None:
    result = await run_load(_cfg(fixture_server, concurrency=3, requests=7))
    assert len(result.records) == 7 and result.total == 7
    assert fixture_server.stats.requests == 7
    assert [r.index for r in result.records] == list(range(7))


async def test_duration_bound_stops_sending_and_the_run_ends(fixture_server: Fixture) -> None:
    started = time.monotonic()
    result = await run_load(_cfg(fixture_server, "ttfb_ms=20 chunks=1", concurrency=2, duration_s=0.3))
    elapsed = time.monotonic() - started
    assert elapsed < 1.5
    assert 6 <= result.total <= 32
    first = result.records[0].intended
    assert all(r.intended - first < 0.3 for r in result.records)
    assert result.ok == result.total


async def test_open_loop_duration_bound_stops_the_schedule(fixture_server: Fixture) -> None:
    result = await run_load(_cfg(fixture_server, rate=50.0, duration_s=0.2))
    assert result.total == 10  # intended times 0, 0.02, ..., 0.18
    assert max(r.intended for r in result.records) < 0.2


async def test_warmup_requests_are_sent_but_excluded(fixture_server: Fixture) -> None:
    result = await run_load(_cfg(fixture_server, "chunks=3", concurrency=1, requests=5, warmup_requests=3))
    assert [r.warmup for r in result.records] == [True, True, True, False, False, False, False, False]
    assert (result.total, result.warmup, result.ok) == (5, 3, 5)
    assert result.chunks == 15
    assert result.ttft["count"] == 5
    assert fixture_server.stats.requests == 8


async def test_warmup_seconds_exclude_what_was_sent_during_them(fixture_server: Fixture) -> None:
    result = await run_load(_cfg(fixture_server, rate=50.0, warmup_s=0.1, duration_s=0.1))
    warm = [r for r in result.records if r.warmup]
    measured = [r for r in result.records if not r.warmup]
    assert len(warm) == 5 and all(r.intended < 0.1 for r in warm)
    assert len(measured) == 5 and all(0.1 - 1e-9 <= r.intended < 0.2 for r in measured)
    assert result.total == 5


async def test_hard_time_limit_aborts_what_is_in_flight(fixture_server: Fixture) -> None:
    started = time.monotonic()
    cfg = _cfg(fixture_server, "chunks=1 stall=1", concurrency=3, requests=10, timeout_s=30.0, max_time_s=0.3)
    result = await run_load(cfg)
    assert time.monotonic() - started < 3.0
    assert result.hard_stopped
    assert result.errors == {"aborted": 3}
    assert all(r.chunks == 1 for r in result.records)


async def test_goodput_counts_requests_meeting_every_slo(fixture_server: Fixture) -> None:
    loose = await run_load(
        _cfg(
            fixture_server,
            "ttfb_ms=30 chunks=3 gap_ms=5",
            concurrency=2,
            requests=4,
            slo_ttft_s=1.0,
            slo_itl_s=1.0,
            slo_e2e_s=1.0,
        )
    )
    assert loose.goodput == 4
    assert loose.goodput_per_s == pytest.approx(4 / loose.window_s)
    tight = await run_load(
        _cfg(fixture_server, "ttfb_ms=30 chunks=3 gap_ms=5", concurrency=2, requests=4, slo_ttft_s=0.01)
    )
    assert tight.goodput == 0
    none = await run_load(_cfg(fixture_server, concurrency=1, requests=1))
    assert none.goodput is None and none.goodput_per_s is None


async def test_live_stats_follow_the_run(fixture_server: Fixture) -> None:
    live = LiveStats()
    await run_load(_cfg(fixture_server, "ttfb_ms=10 chunks=2", concurrency=2, requests=4), live)
    assert (live.started, live.done, live.in_flight, live.errors, live.chunks) == (4, 4, 0, 0, 8)
    p50 = live.ttft_p50()
    assert p50 is not None and p50 >= 0.009


async def test_prompts_are_used_in_turn(fixture_server: Fixture) -> None:
    await run_load(_cfg(fixture_server, concurrency=1, requests=5, prompts=["chunks=1", "chunks=2 x"]))
    assert fixture_server.stats.prompts == ["chunks=1", "chunks=2 x", "chunks=1", "chunks=2 x", "chunks=1"]


async def test_gc_settings_are_restored_after_a_run(fixture_server: Fixture) -> None:
    before = gc.get_threshold(), gc.get_freeze_count()
    await run_load(_cfg(fixture_server, concurrency=1, requests=2))
    assert (gc.get_threshold(), gc.get_freeze_count()) == before


async def test_ramp_up_starts_closed_loop_workers_evenly(fixture_server: Fixture) -> None:
    result = await run_load(
        _cfg(fixture_server, "ttfb_ms=300 chunks=1", concurrency=4, requests=4, ramp_up_s=0.2)
    )
    starts = sorted(r.intended for r in result.records)
    assert starts[0] < 0.02
    assert [b - a for a, b in itertools.pairwise(starts)] == pytest.approx([0.05] * 3, abs=0.02)
    assert result.tool_cpu_s > 0 and result.tool_loop_lag["count"] >= 1
