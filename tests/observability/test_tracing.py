"""Traces: stream span → attempt spans → pydantic-ai's GenAI spans, traceparent continued, no content."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from opentelemetry import trace
from pydantic_ai import Agent, AgentRunResultEvent, PartDeltaEvent, PartStartEvent, TextPart, TextPartDelta
from pydantic_ai.capabilities import Instrumentation
from pydantic_ai.messages import ModelMessage, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

from proxy.events import AttemptFinished, AttemptStarted, Delta, End, Event, Retry, Start, Usage
from proxy.observability.observer import Observers
from proxy.observability.tracing import Tracing, TracingObserver

from .conftest import Script, Traced, drive

PROMPT = "PROMPT-SECRET-1b7e what is the weather in Atlantis?"
SECRETS = ("PROMPT-SECRET", "COMPLETION-SECRET", "TOOL-RESULT-SECRET", "ARG-SECRET")
TRACEPARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT_SPAN = "00f067aa0ba902b7"


def weather_agent(tracing: Tracing, fail_first: int = 0) -> Agent[None, str]:
    """A FunctionModel agent that calls a tool, then streams its answer; its first `fail_first`
    model requests raise."""
    calls = {"n": 0}

    async def stream_fn(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
        calls["n"] += 1
        if calls["n"] <= fail_first:
            raise ConnectionError("upstream dropped")
        if any(isinstance(p, ToolReturnPart) for p in messages[-1].parts):
            for chunk in ("COMPLETION-SECRET ", "it is ", "sunny."):
                yield chunk
        else:
            yield {
                0: DeltaToolCall(
                    name="get_weather", json_args='{"city": "ARG-SECRET"}', tool_call_id="call_1"
                )
            }

    settings = tracing.instrumentation_settings()
    agent: Agent[None, str] = Agent(
        FunctionModel(stream_function=stream_fn),
        name="weather",
        capabilities=[Instrumentation(settings=settings)],
    )

    @agent.tool_plain
    def get_weather(city: str) -> str:
        return "TOOL-RESULT-SECRET sunny"

    return agent


async def engine(agent: Agent[None, str], stream_id: str = "s-1", attempts: int = 1) -> AsyncIterator[Event]:
    """A small stand-in for the real engine: the same event order, pydantic-ai run in this task."""
    yield Start(stream_id=stream_id, seq=0, agent="demo", model="mock:fast", conversation_id=None,
                created_at=time.time())  # fmt: skip
    seq = 1
    for n in range(1, attempts + 1):
        yield AttemptStarted(stream_id=stream_id, agent="demo", model="mock:fast", attempt=n)
        try:
            async with agent.run_stream_events(PROMPT) as run:
                async for ev in run:
                    text = None
                    if isinstance(ev, PartStartEvent) and isinstance(ev.part, TextPart):
                        text = ev.part.content
                    elif isinstance(ev, PartDeltaEvent) and isinstance(ev.delta, TextPartDelta):
                        text = ev.delta.content_delta
                    elif isinstance(ev, AgentRunResultEvent):
                        break
                    if text:
                        yield Delta(stream_id=stream_id, seq=seq, text=text)
                        seq += 1
        except Exception as exc:
            yield AttemptFinished(stream_id=stream_id, agent="demo", model="mock:fast", outcome="error",
                                  error_type="read", reason=type(exc).__name__, duration_s=0.0)  # fmt: skip
            yield Retry(stream_id=stream_id, seq=seq, attempt=n, max_attempts=attempts,
                        reason="stream_dropped", delay_s=0.0, discard=False)  # fmt: skip
            seq += 1
            continue
        yield AttemptFinished(stream_id=stream_id, agent="demo", model="mock:fast", outcome="success",
                              error_type=None, reason=None, duration_s=0.0)  # fmt: skip
        break
    yield End(stream_id=stream_id, seq=seq, finish_reason="stop", text="", usage=Usage(), attempts=n,
              model="mock:fast", ttft_s=None, duration_s=0.0, conversation_id=None)  # fmt: skip


def parent_of(span: Any, spans: list[Any]) -> Any:
    return next((s for s in spans if span.parent and s.context.span_id == span.parent.span_id), None)


def all_strings(span: Any) -> list[str]:
    values: list[Any] = [span.name, *span.attributes.values()]
    for ev in span.events:
        values.extend([ev.name, *ev.attributes.values()])
    out: list[str] = []
    for v in values:
        out.extend(str(x) for x in v) if isinstance(v, tuple | list) else out.append(str(v))
    return out


async def test_pydantic_ai_spans_nest_under_the_attempt_under_the_stream(traced: Traced) -> None:
    tracing = Tracing(traced.provider)
    driven = await drive(Observers([tracing.observer()]), engine(weather_agent(tracing)), transport="ws")
    assert driven.end is not None

    spans = traced.spans()
    (stream,) = traced.by_name("agent_proxy.stream")
    (attempt,) = traced.by_name("agent_proxy.attempt")
    (invoke,) = traced.by_name("invoke_agent weather")
    chats = [s for s in spans if s.name.startswith("chat ")]
    (tool,) = traced.by_name("execute_tool get_weather")
    assert {s.context.trace_id for s in spans} == {stream.context.trace_id}
    assert stream.parent is None
    assert parent_of(attempt, spans) is stream
    assert parent_of(invoke, spans) is attempt
    assert len(chats) == 2
    assert all(parent_of(c, spans) is invoke for c in chats)
    assert parent_of(tool, spans) is invoke
    assert stream.attributes["agent_proxy.agent"] == "demo"
    assert stream.attributes["agent_proxy.transport"] == "ws"
    assert stream.attributes["agent_proxy.stream_id"] == "s-1"
    assert stream.attributes["agent_proxy.attempts"] == 1
    assert stream.attributes["agent_proxy.outcome"] == "stop"
    assert attempt.attributes["agent_proxy.model"] == "mock:fast"
    assert attempt.attributes["agent_proxy.attempt"] == 1
    assert attempt.attributes["agent_proxy.outcome"] == "success"
    assert driven.ctx.trace_id == format(stream.context.trace_id, "032x")
    # Every context we attached was detached again.
    assert trace.get_current_span() is trace.INVALID_SPAN


async def test_each_attempt_gets_its_own_span_and_failed_ones_say_why(traced: Traced) -> None:
    tracing = Tracing(traced.provider)
    await drive(Observers([tracing.observer()]), engine(weather_agent(tracing, fail_first=1), attempts=3))

    spans = traced.spans()
    (stream,) = traced.by_name("agent_proxy.stream")
    attempts = sorted(
        traced.by_name("agent_proxy.attempt"), key=lambda s: s.attributes["agent_proxy.attempt"]
    )
    assert [a.attributes["agent_proxy.outcome"] for a in attempts] == ["error", "success"]
    assert attempts[0].attributes["error.type"] == "read"
    assert attempts[0].status.status_code == trace.StatusCode.ERROR
    assert all(parent_of(a, spans) is stream for a in attempts)
    invokes = traced.by_name("invoke_agent weather")
    assert sorted(parent_of(i, spans).attributes["agent_proxy.attempt"] for i in invokes) == [1, 2]
    assert stream.attributes["agent_proxy.attempts"] == 2
    assert [e.name for e in stream.events] == ["retry"]
    assert stream.events[0].attributes["agent_proxy.reason"] == "stream_dropped"


async def test_incoming_traceparent_is_continued(traced: Traced) -> None:
    tracing = Tracing(traced.provider)
    headers = {"Traceparent": f"00-{TRACEPARENT_TRACE}-{TRACEPARENT_SPAN}-01", "tracestate": "vendor=1"}
    driven = await drive(Observers([tracing.observer()]), engine(weather_agent(tracing)), headers=headers)

    (stream,) = traced.by_name("agent_proxy.stream")
    assert format(stream.context.trace_id, "032x") == TRACEPARENT_TRACE
    assert stream.parent is not None
    assert stream.parent.is_remote
    assert format(stream.parent.span_id, "016x") == TRACEPARENT_SPAN
    assert stream.context.trace_state.get("vendor") == "1"
    assert {s.context.trace_id for s in traced.spans()} == {int(TRACEPARENT_TRACE, 16)}
    assert driven.ctx.trace_id == TRACEPARENT_TRACE


async def test_malformed_traceparent_starts_a_new_trace(traced: Traced) -> None:
    observer = Observers([TracingObserver(traced.provider)])
    await drive(observer, Script().ok(), headers={"traceparent": "00-nonsense-01"})
    (stream,) = traced.by_name("agent_proxy.stream")
    assert stream.parent is None


async def test_no_prompt_or_completion_text_in_any_span_by_default(traced: Traced) -> None:
    tracing = Tracing(traced.provider)
    await drive(Observers([tracing.observer()]), engine(weather_agent(tracing)))
    spans = traced.spans()
    assert len(spans) >= 5
    leaks = [(s.name, v) for s in spans for v in all_strings(s) if any(secret in v for secret in SECRETS)]
    assert leaks == []


async def test_include_content_switch_records_the_text(traced: Traced) -> None:
    """The check above can see content: with the switch on, the prompt is in pydantic-ai's spans."""
    tracing = Tracing(traced.provider, include_content=True)
    await drive(Observers([tracing.observer()]), engine(weather_agent(tracing)))
    found = {secret for s in traced.spans() for v in all_strings(s) for secret in SECRETS if secret in v}
    assert found == set(SECRETS)


async def test_client_disconnect_mid_attempt_closes_both_spans(traced: Traced) -> None:
    tracing = Tracing(traced.provider)
    driven = await drive(Observers([tracing.observer()]), engine(weather_agent(tracing)), gone_after=2)
    assert driven.end is None
    (stream,) = traced.by_name("agent_proxy.stream")
    (attempt,) = traced.by_name("agent_proxy.attempt")
    assert stream.attributes["agent_proxy.outcome"] == "client_disconnect"
    assert attempt.attributes["agent_proxy.outcome"] == "cancelled"
    assert stream.end_time is not None
    assert attempt.end_time is not None
    assert trace.get_current_span() is trace.INVALID_SPAN


async def test_failed_stream_span_has_error_status_and_code(traced: Traced) -> None:
    observer = Observers([TracingObserver(traced.provider)])
    s = Script().start().attempt().finish_attempt(outcome="error", error_type="http_400", reason="http_400")
    await drive(
        observer, s.error("upstream_bad_request", "the prompt PROMPT-SECRET was rejected").end("error")
    )
    (stream,) = traced.by_name("agent_proxy.stream")
    assert stream.status.status_code == trace.StatusCode.ERROR
    assert stream.attributes["agent_proxy.error_code"] == "upstream_bad_request"
    assert not any("PROMPT-SECRET" in v for v in all_strings(stream))


async def test_fallback_and_circuit_changes_are_span_events(traced: Traced) -> None:
    observer = Observers([TracingObserver(traced.provider)])
    s = Script().start("mock:slow").circuit("mock:slow", "open").fallback("mock:slow", "mock:fast")
    await drive(observer, s.attempt("mock:fast").deltas("a").finish_attempt("mock:fast").end())
    (stream,) = traced.by_name("agent_proxy.stream")
    assert [e.name for e in stream.events] == ["circuit_changed", "fallback"]
    assert stream.events[1].attributes["agent_proxy.from_model"] == "mock:slow"
