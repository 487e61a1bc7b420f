"""The writer loop every transport shares: events to the wire, heartbeats, and the observer calls.

`pump` is the only place where a stream's events meet the observer, so metrics, traces and logs
see the same sequence on every transport. It is also where time to first token is measured (from
the request's arrival to the first `delta`/`output` written), once: observers read it from the
context, and `end.ttft_s` is filled in from it.

Heartbeats come from a timer task rather than a timeout around each read: a read cancelled by a
timeout would cancel the upstream request, and the timer costs nothing per event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from proxy.events import CONTENT_EVENTS, End, Event, Heartbeat
from proxy.observability.observer import Observer, StreamContext, StreamOutcome

Send = Callable[[Event], Awaitable[None]]

CLIENT_GONE = ConnectionError
"""What a write raises when the client went away (ConnectionResetError among them)."""


async def _heartbeats(
    ctx: StreamContext, send: Send, interval: float, last: list[float], observer: Observer
) -> None:
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(max(0.0, last[0] + interval - loop.time()))
        if loop.time() - last[0] >= interval:
            hb = Heartbeat(stream_id=ctx.stream_id)
            try:
                await send(hb)
            except CLIENT_GONE:
                return
            last[0] = loop.time()
            observer.event_sent(ctx, hb)


async def pump(
    events: AsyncIterator[Event],
    send: Send,
    ctx: StreamContext,
    observer: Observer,
    *,
    heartbeat_interval: float | None,
    measure: bool = True,
) -> End | None:
    """Write every public event of `events` with `send` until `end`; return it.

    Returns None when the client went away (a `ConnectionError` from `send`, or this task being
    cancelled, which is re-raised). The iterator is closed in every case: before its `end` that
    cancels the agent run and the upstream request (or, with a resume grace period, lets it run on
    for a client to resume it). `measure=False` for a resumed stream: its `end` already holds the
    time to first token of the request that started it.
    """
    loop = asyncio.get_running_loop()
    last = [loop.time()]
    observer.stream_started(ctx)
    beat: asyncio.Task[None] | None = None
    if heartbeat_interval:
        beat = asyncio.create_task(_heartbeats(ctx, send, heartbeat_interval, last, observer))
    end: End | None = None
    outcome: StreamOutcome = "client_disconnect"
    try:
        async for event in events:
            if event.internal:
                observer.event_sent(ctx, event)
                continue
            if isinstance(event, End):
                if beat is not None:
                    beat.cancel()
                if measure and ctx.first_content_at is not None:
                    event.ttft_s = ctx.first_content_at - ctx.arrived_at
            await send(event)
            last[0] = loop.time()
            if isinstance(event, CONTENT_EVENTS):
                now = time.monotonic()
                if ctx.first_content_at is None:
                    ctx.first_content_at = now
                ctx.last_content_at = now
            observer.event_sent(ctx, event)
            if isinstance(event, End):
                end = event
                outcome = event.finish_reason
                break
    except CLIENT_GONE:
        return None
    finally:
        if beat is not None:
            beat.cancel()
        try:
            await close_events(events)
        finally:
            observer.stream_finished(ctx, outcome, end)
    return end


async def close_events(events: AsyncIterator[Event]) -> None:
    """Close a stream's events (a `Stream`, or a resumed stream's iterator)."""
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
