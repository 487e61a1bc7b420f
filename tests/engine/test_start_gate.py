"""The start gate: free while the loop keeps up; in arrival order, a batch per tick, while it lags."""

from __future__ import annotations

import asyncio

from proxy.engine.start_gate import StartGate
from proxy.loop_lag import LoopLag


def released(tickets: list[asyncio.Future[None] | None]) -> list[int]:
    return [i for i, t in enumerate(tickets) if t is not None and t.done() and not t.cancelled()]


async def test_no_lag_no_wait() -> None:
    gate = StartGate(LoopLag(), threshold_s=0.1)
    assert gate.ticket() is None
    assert gate.waiting == 0


async def test_a_lagging_loop_queues_starts_and_releases_them_in_order_a_batch_per_tick() -> None:
    lag = LoopLag()
    gate = StartGate(lag, threshold_s=0.1, min_batch=1, max_batch=4)
    lag.record(0.5)
    tickets = [gate.ticket() for _ in range(10)]
    assert all(t is not None for t in tickets) and gate.waiting == 10

    lag.record(0.5)  # still lagging: the batch halves, 4 -> 2 -> 1 ...
    assert released(tickets) == [0]
    lag.record(0.5)  # ... and never below min_batch: the queue always moves
    lag.record(0.5)
    assert released(tickets) == [0, 1, 2]
    lag.record(0.01)  # caught up: 1 -> 2
    assert released(tickets) == [0, 1, 2, 3, 4]
    lag.record(0.01)  # 2 -> 4
    assert released(tickets) == list(range(9))
    lag.record(0.01)
    assert released(tickets) == list(range(10))
    assert gate.waiting == 0
    assert gate.ticket() is None


async def test_a_cancelled_ticket_leaves_the_queue_and_takes_no_place_in_a_batch() -> None:
    lag = LoopLag()
    gate = StartGate(lag, threshold_s=0.1, min_batch=1, max_batch=2)
    lag.record(0.5)
    first, second, third = gate.ticket(), gate.ticket(), gate.ticket()
    assert first is not None and second is not None and third is not None
    first.cancel()
    await asyncio.sleep(0)  # the done callback runs on the loop
    assert gate.waiting == 2
    lag.record(0.5)  # batch 1
    assert second.done() and not third.done()


async def test_a_loop_that_keeps_lagging_still_starts_min_batch_streams_a_tick() -> None:
    lag = LoopLag()
    gate = StartGate(lag, threshold_s=0.25, min_batch=8, max_batch=64)
    lag.record(1.0)  # 64 -> 32
    tickets = [gate.ticket() for _ in range(40)]
    lag.record(1.0)  # 16
    assert len(released(tickets)) == 16
    lag.record(1.0)  # 8, and no fewer
    lag.record(1.0)
    assert len(released(tickets)) == 32
