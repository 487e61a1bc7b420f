"""The attempt's deadlines: one lazily re-armed timer per attempt instead of a timeout per wait."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from proxy.config import TimeoutSettings
from proxy.engine.failures import AttemptTimeout
from proxy.engine.pacing import AttemptCancelled, Pacer


def pacer(first: float = 5.0, idle: float = 5.0, total: float = 60.0) -> Pacer:
    loop = asyncio.get_running_loop()
    settings = TimeoutSettings(first_token_s=first, idle_s=idle, total_s=total)
    return Pacer(settings, loop.time() + total)


async def gaps(seconds: float, count: int) -> AsyncIterator[int]:
    for i in range(count):
        await asyncio.sleep(seconds)  # the upstream's pace, not a wait for an event
        yield i


async def test_events_faster_than_the_idle_deadline_never_time_out() -> None:
    # 8 gaps of 40 ms take 320 ms, well past the first deadline the timer was armed for (100 ms).
    p = pacer(first=0.1, idle=0.1)
    items = [item async for item in p.paced(gaps(0.04, 8))]
    p.close()
    assert items == list(range(8))


async def one_event_then_silence(p: Pacer) -> None:
    async for _ in p.paced(gaps(0.0, 1)):
        await p.wait(asyncio.get_running_loop().create_future())


async def test_a_gap_longer_than_idle_times_out_as_idle() -> None:
    # The timer was armed for the 5 s first-token deadline; after the first event the 50 ms idle
    # deadline applies, so it must be re-armed earlier (2 s bounds the test if it is not).
    p = pacer(first=5.0, idle=0.05)
    with pytest.raises(AttemptTimeout) as info:
        await asyncio.wait_for(one_event_then_silence(p), 2)
    p.close()
    assert info.value.kind == "idle" and info.value.seconds == 0.05


async def test_no_first_event_times_out_as_first_token() -> None:
    p = pacer(first=0.05, idle=5.0)
    with pytest.raises(AttemptTimeout) as info:
        await p.wait(asyncio.get_running_loop().create_future())
    p.close()
    assert info.value.kind == "first_token"


async def test_the_stream_deadline_wins_when_it_comes_first() -> None:
    p = pacer(first=5.0, idle=5.0, total=0.05)
    with pytest.raises(AttemptTimeout) as info:
        await p.wait(asyncio.get_running_loop().create_future())
    p.close()
    assert info.value.kind == "total"


async def waiting_task(p: Pacer, upstream: asyncio.Future[None]) -> asyncio.Task[None]:
    """A task that is inside `p.wait(upstream)` when this returns."""
    started = asyncio.Event()

    async def consumer() -> None:
        started.set()
        await p.wait(upstream)

    task = asyncio.create_task(consumer())
    await started.wait()
    return task


async def test_cancel_interrupts_the_wait_and_every_later_one() -> None:
    p = pacer()
    upstream: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = await waiting_task(p, upstream)
    p.cancel()
    with pytest.raises(AttemptCancelled):
        await task
    assert upstream.cancelled()
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    with pytest.raises(AttemptCancelled):
        await p.wait(done)
    p.close()


async def test_cancelling_the_task_is_not_mistaken_for_a_deadline() -> None:
    p = pacer(first=0.05)
    task = await waiting_task(p, asyncio.get_running_loop().create_future())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    p.close()


async def test_a_task_cancelled_while_being_interrupted_stays_cancelled() -> None:
    p = pacer()
    task = await waiting_task(p, asyncio.get_running_loop().create_future())
    # Both at once: the pacer's interruption and a cancellation from elsewhere.
    p.cancel()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    p.close()
