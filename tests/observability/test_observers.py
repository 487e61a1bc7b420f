"""`Observers` fans every event out, except deltas to observers that say they ignore them."""

from __future__ import annotations

from proxy.events import Delta, End, Event, Start
from proxy.observability.observer import Observers, StreamContext, StreamOutcome


class _Recorder:
    def __init__(self) -> None:
        self.types: list[str] = []

    def stream_started(self, ctx: StreamContext) -> None:
        self.types.append("started")

    def event_sent(self, ctx: StreamContext, event: Event) -> None:
        self.types.append(event.type)

    def stream_finished(self, ctx: StreamContext, outcome: StreamOutcome, end: End | None) -> None:
        self.types.append("finished")


class _NoDeltas(_Recorder):
    sees_deltas = False


def test_deltas_skip_only_the_observers_that_ignore_them() -> None:
    every, no_deltas = _Recorder(), _NoDeltas()
    observers = Observers([every, no_deltas])
    ctx = StreamContext(stream_id="str_1", agent="demo", transport="sse")
    end = End(
        stream_id="str_1", finish_reason="stop", text="hi", attempts=1, model="m", ttft_s=None,
        duration_s=0.1, conversation_id=None,
    )  # fmt: skip
    observers.stream_started(ctx)
    for event in (
        Start(stream_id="str_1", agent="demo", model="m", conversation_id=None, created_at=0.0),
        Delta(stream_id="str_1", text="h"),
        Delta(stream_id="str_1", text="i"),
        end,
    ):
        observers.event_sent(ctx, event)
    observers.stream_finished(ctx, "stop", end)
    assert every.types == ["started", "start", "delta", "delta", "end", "finished"]
    assert no_deltas.types == ["started", "start", "end", "finished"]
