"""Drives the load: closed or open loop, warm-up, bounds and the hard stop; `run_load` is the API."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import resource
import time
from collections import deque
from collections.abc import Iterator
from time import perf_counter

import aiohttp

from proxy.loadtest.clients import WireClient, classify, make_client
from proxy.loadtest.config import LoadConfig
from proxy.loadtest.record import ABORTED, TIMEOUT, RequestRecord
from proxy.loadtest.result import LoadResult, build_result
from proxy.loadtest.schedule import arrival_offsets
from proxy.loadtest.stats import percentile

# File descriptors kept free beyond one per connection (stdio, DNS, the event loop's own).
_FD_SLACK = 64
# A full-collection threshold (in young collections) that no run reaches.
_GC_FULL_NEVER = 1_000_000_000
# Requests an open loop that fell behind its schedule sends before letting the others run.
_SPAWN_BATCH = 64
# How often the tool checks its own event loop for lag (a sign that it, not the target, is slow).
_LAG_PROBE_S = 0.05


class LiveStats:
    """Running counters for a progress display; updated by the runner, read on the same loop."""

    def __init__(self, window: int = 2000) -> None:
        self.started = 0
        self.done = 0
        self.errors = 0
        self.chunks = 0
        self.in_flight = 0
        self.t0 = perf_counter()
        self._ttft: deque[float] = deque(maxlen=window)
        self.loop_lag: list[float] = []

    def record_done(self, rec: RequestRecord) -> None:
        self.done += 1
        self.chunks += rec.chunks
        if rec.error is not None:
            self.errors += 1
        elif rec.first_content is not None:
            self._ttft.append(rec.first_content - rec.intended)

    @property
    def elapsed_s(self) -> float:
        return perf_counter() - self.t0

    def ttft_p50(self) -> float | None:
        """Median TTFT of the most recent successful requests (warm-up included)."""
        if not self._ttft:
            return None
        return percentile(sorted(self._ttft), 50.0)


@contextlib.contextmanager
def _quiet_gc(enabled: bool) -> Iterator[None]:
    """Keep full garbage collections out of the run: they pause the loop for 100+ ms with thousands
    of streams open, and that pause would land in the latencies measured. Objects that exist at the
    start are frozen out of collection and young generations are still collected as usual; what
    the run left for a full collection waits for the first one after it. The settings are
    process-wide: `LoadConfig.tune_gc=False` leaves them alone (e.g. when the system under test
    runs in the same process)."""
    if not enabled:
        yield
        return
    thresholds = gc.get_threshold()
    gc.freeze()
    # Young generations keep their (small) thresholds: larger ones make each of their pauses longer.
    gc.set_threshold(thresholds[0], thresholds[1], _GC_FULL_NEVER)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _raise_fd_limit(connections: int) -> None:
    """Lift the soft open-files limit towards the hard one when the run needs more sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = connections + _FD_SLACK
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


class _Runner:
    def __init__(self, config: LoadConfig, client: WireClient, live: LiveStats) -> None:
        self.config = config
        self.client = client
        self.live = live
        self.t0 = perf_counter()
        live.t0 = self.t0
        self.records: list[RequestRecord] = []
        self.next_index = 0
        self.measured = 0
        self.measure_start: float | None = None
        self.stopped = False
        self.hard_stopped = False
        self.slots = asyncio.Semaphore(config.in_flight_limit)

    def admit(self, offset: float) -> RequestRecord | None:
        """The next request, meant to be sent `offset` seconds after the start; None once the bounds
        are reached. (Offsets, not absolute times, so that schedule arithmetic stays exact.)"""
        cfg = self.config
        if self.stopped:
            return None
        index = self.next_index
        warmup = index < cfg.warmup_requests or offset < cfg.warmup_s
        if not warmup:
            if self.measure_start is None:
                self.measure_start = offset
            elif cfg.duration_s is not None and offset - self.measure_start >= cfg.duration_s:
                self.stopped = True
                return None
            if cfg.requests is not None and self.measured >= cfg.requests:
                self.stopped = True
                return None
            self.measured += 1
        self.next_index += 1
        return RequestRecord(index=index, warmup=warmup, intended=self.t0 + offset)

    async def execute(self, rec: RequestRecord) -> None:
        cfg = self.config
        live = self.live
        self.records.append(rec)
        live.started += 1
        live.in_flight += 1
        prompt = cfg.prompts[rec.index % len(cfg.prompts)]
        try:
            async with self.slots:
                rec.sent = perf_counter()
                try:
                    async with asyncio.timeout(cfg.timeout_s):
                        await self.client.request(rec, prompt)
                except TimeoutError:
                    rec.fail(TIMEOUT, f"no end of stream within {cfg.timeout_s:g}s")
                except Exception as exc:
                    kind, message = classify(exc, rec)
                    rec.fail(kind, message)
        except asyncio.CancelledError:
            rec.fail(ABORTED, "stopped by the overall time limit")
            raise
        finally:
            if rec.ended is None:
                rec.ended = perf_counter()
            live.in_flight -= 1
            live.record_done(rec)

    async def closed_loop(self, concurrency: int) -> None:
        async def worker(start_delay: float) -> None:
            if start_delay > 0:
                await asyncio.sleep(start_delay)
            while (rec := self.admit(perf_counter() - self.t0)) is not None:
                await self.execute(rec)

        step = self.config.ramp_up_s / concurrency
        workers = [asyncio.create_task(worker(i * step)) for i in range(concurrency)]
        try:
            await asyncio.gather(*workers)
        finally:
            await _cancel_all(workers)

    async def open_loop(self, rate: float) -> None:
        cfg = self.config
        tasks: set[asyncio.Task[None]] = set()
        overdue = 0
        try:
            for offset in arrival_offsets(rate, cfg.arrival, cfg.seed):
                intended = self.t0 + offset
                delay = intended - perf_counter()
                if delay > 0:
                    overdue = 0
                    await asyncio.sleep(delay)
                else:
                    # Behind schedule: send what is due, but let the requests run meanwhile.
                    overdue += 1
                    if overdue % _SPAWN_BATCH == 0:
                        await asyncio.sleep(0)
                rec = self.admit(offset)
                if rec is None:
                    break
                task = asyncio.create_task(self.execute(rec))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            await _cancel_all(tasks)

    async def run(self) -> None:
        cfg = self.config
        watcher = asyncio.create_task(_watch_loop(self.live.loop_lag))
        try:
            async with asyncio.timeout(cfg.effective_max_time_s()):
                if cfg.rate is not None:
                    await self.open_loop(cfg.rate)
                else:
                    await self.closed_loop(cfg.concurrency or 1)
        except TimeoutError:
            self.hard_stopped = True
        finally:
            await _cancel_all([watcher])


async def _watch_loop(samples: list[float]) -> None:
    """Record how late the event loop wakes a sleeper: the tool's own queueing delay."""
    while True:
        t = perf_counter()
        await asyncio.sleep(_LAG_PROBE_S)
        samples.append(max(0.0, perf_counter() - t - _LAG_PROBE_S))


async def _cancel_all(tasks: set[asyncio.Task[None]] | list[asyncio.Task[None]]) -> None:
    pending = [t for t in tasks if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


async def run_load(config: LoadConfig, live: LiveStats | None = None) -> LoadResult:
    """Run one load test and summarize it. Always returns within the config's hard overall timeout
    (plus closing the connections); requests still running then are recorded as `aborted`.
    Pass a `LiveStats` to watch progress while it runs.
    """
    config.validate()
    live = live if live is not None else LiveStats()
    _raise_fd_limit(config.in_flight_limit)
    with _quiet_gc(config.tune_gc):
        connector = aiohttp.TCPConnector(limit=config.in_flight_limit, limit_per_host=0, ttl_dns_cache=300)
        async with aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),
            cookie_jar=aiohttp.DummyCookieJar(),
        ) as session:
            client = make_client(config, session)
            runner = _Runner(config, client, live)
            cpu0 = time.process_time()
            try:
                await runner.run()
            finally:
                await client.close()
        wall = perf_counter() - runner.t0
        cpu = time.process_time() - cpu0
    for rec in runner.records:
        rec.finish(runner.t0)
    return build_result(
        config,
        runner.records,
        wall_s=wall,
        hard_stopped=runner.hard_stopped,
        tool_cpu_s=cpu,
        loop_lag=live.loop_lag,
    )
