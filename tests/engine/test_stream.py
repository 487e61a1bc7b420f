"""The stream state machine in process: states, retries, discards, fallbacks, breakers, deadlines
and cancellation, on scripted pydantic-ai FunctionModels (no server, no sockets)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from proxy.engine import Stream, StreamState
from proxy.engine.states import TRANSITIONS
from proxy.events import CircuitChanged, Event, Fallback, Retry
from tests.engine.scripted import STALL, Script, harness, http_error, play, runtime

S = StreamState
DROP = http_error(502, in_stream=True)
"""The upstream fails mid-stream (retryable)."""


async def test_a_clean_answer_goes_admitted_attempting_streaming_ended() -> None:
    h = harness(runtime(Script([["Hello", " world"]])))
    stream = await h.engine.open("unit", "hi")
    assert stream.state is S.ADMITTED
    seen = await play(stream)
    assert seen.types == ["start", "delta", "delta", "end"]
    assert seen.states == [S.ADMITTED, S.STREAMING, S.STREAMING, S.ENDED]
    assert [e.type for e in seen.internal] == ["attempt_started", "attempt_finished"]
    assert seen.end.text == "Hello world" and seen.end.finish_reason == "stop" and seen.end.attempts == 1


async def test_a_retry_before_the_first_token_discards_nothing() -> None:
    script = Script([[http_error(503)], ["ok"]])
    seen = await play(await harness(runtime(script)).engine.open("unit", "hi"))
    assert seen.types == ["start", "retry", "delta", "end"]
    retry = seen.of("retry")[0]
    assert (retry.reason, retry.discard, retry.attempt) == ("http_503", False, 1)
    assert seen.states[1] is S.RETRYING
    assert seen.end.text == "ok" and seen.end.attempts == 2 and script.made == 2


async def test_a_retry_after_the_first_token_discards_what_was_sent() -> None:
    script = Script([["par", "tial", DROP], ["whole ", "answer"]])
    seen = await play(await harness(runtime(script)).engine.open("unit", "hi"))
    assert seen.types == ["start", "delta", "delta", "retry", "delta", "delta", "end"]
    assert seen.of("retry")[0].discard is True
    assert seen.states == [
        S.ADMITTED,
        S.STREAMING,
        S.STREAMING,
        S.RETRYING,
        S.STREAMING,
        S.STREAMING,
        S.ENDED,
    ]
    assert seen.end.text == "whole answer"


async def test_mid_stream_fail_ends_with_error_instead_of_restarting() -> None:
    script = Script([["par", DROP], ["never"]])
    seen = await play(await harness(runtime(script, mid_stream="fail")).engine.open("unit", "hi"))
    assert seen.types == ["start", "delta", "error", "end"]
    assert seen.of("error")[0].code == "upstream_stream_error"
    assert seen.end.finish_reason == "error" and script.made == 1


async def test_a_non_retryable_failure_neither_retries_nor_falls_back() -> None:
    primary, fallback = Script([[http_error(400)]]), Script([["never"]])
    seen = await play(await harness(runtime(primary, fallback)).engine.open("unit", "hi"))
    assert seen.types == ["start", "error", "end"]
    assert seen.of("error")[0].code == "upstream_bad_request"
    assert (primary.made, fallback.made) == (1, 0)


async def test_spent_attempts_fall_back_to_the_next_model_in_order() -> None:
    m0, m1, m2 = Script([[http_error(503)]]), Script([["x", DROP]]), Script([["from m2"]])
    seen = await play(await harness(runtime(m0, m1, m2, max_attempts=2)).engine.open("unit", "hi"))
    fallbacks = [e for e in seen.internal if isinstance(e, Fallback)]
    assert [(f.from_model, f.model, f.reason) for f in fallbacks] == [
        ("m0", "m1", "http_503"),
        ("m1", "m2", "in_stream_error"),
    ]
    assert (m0.made, m1.made, m2.made) == (2, 2, 1)
    # m1 sent text before failing, so moving on to m2 discards it.
    assert [r.discard for r in seen.of("retry")] == [False, False, True, True]
    assert seen.end.text == "from m2" and seen.end.attempts == 5


async def test_the_breaker_opens_skips_the_model_half_opens_after_the_cooldown_and_closes() -> None:
    primary, fallback = Script([[http_error(503)], [http_error(503)], ["recovered"]]), Script([["fb"]])
    h = harness(runtime(primary, fallback, max_attempts=1), failure_threshold=2, cooldown_s=30)

    def circuit(seen_internal: list[Event]) -> list[str]:
        return [e.state for e in seen_internal if isinstance(e, CircuitChanged)]

    first = await play(await h.engine.open("unit", "hi"))
    second = await play(await h.engine.open("unit", "hi"))
    assert (first.end.text, second.end.text) == ("fb", "fb")
    assert circuit(second.internal) == ["open"]
    assert h.breakers.states()["m0"] == "open"

    skipped = await play(await h.engine.open("unit", "hi"))
    assert primary.made == 2  # the open circuit kept the third stream off the primary
    assert [(f.from_model, f.reason) for f in skipped.internal if isinstance(f, Fallback)] == [
        ("m0", "circuit_open")
    ]

    h.clock.now += 31
    probe = await play(await h.engine.open("unit", "hi"))
    assert probe.end.text == "recovered"
    assert circuit(probe.internal) == ["half_open", "closed"]
    assert h.breakers.states()["m0"] == "closed"


async def test_the_breaker_logs_one_line_when_it_opens_and_one_when_it_closes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    primary, fallback = Script([[http_error(503)], [http_error(503)], ["recovered"]]), Script([["fb"]])
    h = harness(runtime(primary, fallback, max_attempts=1), failure_threshold=2, cooldown_s=30)
    caplog.set_level(logging.INFO, logger="agent_proxy.circuit")
    for _ in range(3):  # two failures open it; the third stream is kept off the primary
        await play(await h.engine.open("unit", "hi"))
    h.clock.now += 31
    await play(await h.engine.open("unit", "hi"))

    lines = [(r.levelname, r.getMessage(), r.fields) for r in caplog.records]  # type: ignore[attr-defined]
    assert lines == [
        (
            "WARNING",
            "circuit of m0 opened",
            {"event": "circuit_opened", "model": "m0", "cause": "http_503", "failures": 2, "cooldown_s": 30},
        ),
        (
            "INFO",
            "circuit of m0 closed",
            {"event": "circuit_closed", "model": "m0", "open_s": 31.0, "refused": 1},
        ),
    ]


async def test_a_failed_half_open_probe_opens_the_circuit_again() -> None:
    primary, fallback = Script([[http_error(503)]]), Script([["fb"]])
    h = harness(runtime(primary, fallback, max_attempts=1), failure_threshold=1, cooldown_s=30)
    await play(await h.engine.open("unit", "hi"))
    h.clock.now += 31
    probe = await play(await h.engine.open("unit", "hi"))
    assert [e.state for e in probe.internal if isinstance(e, CircuitChanged)] == [
        "half_open",
        "open",
    ]
    assert probe.end.text == "fb" and primary.made == 2


async def test_every_model_with_an_open_circuit_ends_the_stream_as_unavailable() -> None:
    primary = Script([[http_error(503)]])
    h = harness(runtime(primary, max_attempts=1), failure_threshold=1)
    await play(await h.engine.open("unit", "hi"))
    seen = await play(await h.engine.open("unit", "hi"))
    assert seen.types == ["start", "error", "end"]
    assert seen.of("error")[0].code == "upstream_unavailable" and seen.end.attempts == 0


async def test_the_total_deadline_ends_the_stream_with_timeout_and_no_retry() -> None:
    script = Script([["slow", STALL]])
    seen = await play(await harness(runtime(script, total_s=0.2, idle_s=5)).engine.open("unit", "hi"))
    assert seen.types == ["start", "delta", "error", "end"]
    assert seen.of("error")[0].code == "total_timeout"
    assert seen.end.finish_reason == "timeout" and script.made == 1 and script.closed == 1


async def test_a_backoff_that_would_pass_the_deadline_is_not_waited_out() -> None:
    script = Script([[http_error(503)], ["never"]])
    rt = runtime(script, backoff_s=5, total_s=1)
    seen = await play(await harness(rt).engine.open("unit", "hi"))
    assert seen.types == ["start", "error", "end"] and script.made == 1


async def test_the_retry_event_announces_the_backoff_before_waiting_it_out() -> None:
    script = Script([[http_error(503, retry_after=0.3)], ["ok"]])
    announced: list[Retry] = []

    def check(stream: Stream, event: Event) -> None:
        if isinstance(event, Retry):
            announced.append(event)
            assert script.made == 1  # the client hears of the retry before the next attempt

    seen = await play(await harness(runtime(script)).engine.open("unit", "hi"), check)
    assert [r.delay_s for r in announced] == [0.3]
    assert seen.end.duration_s >= 0.3


@pytest.mark.parametrize(
    ("script", "cancel_on", "state_when_cancelled", "sent_before_end"),
    [
        (Script([[STALL]]), "attempt_started", S.ATTEMPTING, ["start"]),
        (Script([["a", STALL]]), "delta", S.STREAMING, ["start", "delta"]),
        (Script([[http_error(503)], ["never"]]), "retry", S.RETRYING, ["start", "retry"]),
    ],
)
async def test_cancelling_ends_the_stream_from_every_running_state(
    script: Script, cancel_on: str, state_when_cancelled: StreamState, sent_before_end: list[str]
) -> None:
    states: list[StreamState] = []

    def on_event(stream: Stream, event: Event) -> None:
        if event.type == cancel_on:
            states.append(stream.state)
            # Soon rather than now: while the stream waits on the upstream or on the backoff.
            asyncio.get_running_loop().call_later(0.05, stream.cancel)

    rt = runtime(script, backoff_s=3)
    seen = await play(await harness(rt).engine.open("unit", "hi"), on_event)
    assert states == [state_when_cancelled]
    assert seen.types == [*sent_before_end, "end"]
    assert seen.end.finish_reason == "cancelled" and seen.end.duration_s < 2
    assert script.made == 1 and script.closed == (0 if cancel_on == "retry" else 1)


async def test_cancelling_while_falling_back_ends_before_the_next_model_runs() -> None:
    primary, fallback = Script([[http_error(503)]]), Script([["never"]])
    states: list[StreamState] = []

    def on_event(stream: Stream, event: Event) -> None:
        if isinstance(event, Fallback):
            states.append(stream.state)
            stream.cancel()

    seen = await play(
        await harness(runtime(primary, fallback, max_attempts=1)).engine.open("unit", "hi"), on_event
    )
    assert states == [S.FALLING_BACK]
    assert seen.end.finish_reason == "cancelled" and fallback.made == 0


async def test_a_stream_cancelled_before_it_runs_sends_start_and_end_only() -> None:
    script = Script([["never"]])
    stream = await harness(runtime(script)).engine.open("unit", "hi")
    stream.cancel("shutdown")
    seen = await play(stream)
    assert seen.types == ["start", "end"] and seen.end.finish_reason == "shutdown" and script.made == 0


async def test_closing_the_iterator_mid_stream_closes_the_upstream_request() -> None:
    script = Script([["a", STALL]])
    h = harness(runtime(script))
    stream = await h.engine.open("unit", "hi")
    async for event in stream:
        if event.type == "delta":
            break
    await stream.aclose()
    await h.engine.wait_idle(1)
    assert script.closed == 1 and stream.state is S.ENDED


async def test_cancel_after_the_end_changes_nothing() -> None:
    stream = await harness(runtime(Script([["done"]]))).engine.open("unit", "hi")
    seen = await play(stream)
    stream.cancel()
    assert seen.end.finish_reason == "stop" and stream.state is S.ENDED


async def test_the_answer_is_stored_in_the_conversation_once() -> None:
    h = harness(runtime(Script([["par", DROP], ["first answer"]])))
    seen = await play(await h.engine.open("unit", "hi"))
    conversation = seen.end.conversation_id
    assert conversation is not None
    history = await h.engine.store.get(conversation)
    assert history is not None and len(history) == 2
    assert "first answer" in str(history[-1])


def test_every_state_can_end_and_ended_is_final() -> None:
    for state, targets in TRANSITIONS.items():
        if state is S.ENDED:
            assert targets == frozenset()
        else:
            assert S.ENDED in targets, state
    reachable = {S.ADMITTED}
    for _ in TRANSITIONS:
        reachable |= {t for s in reachable for t in TRANSITIONS[s]}
    assert reachable == set(S)
    assert S.STREAMING not in TRANSITIONS[S.RETRYING]  # a retry always starts a new attempt first
