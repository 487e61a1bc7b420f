"""Engine streams in process: agents on pydantic-ai `FunctionModel`s that play a script per call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models import ModelRequestParameters, StreamedResponse
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.settings import ModelSettings

from proxy.config import ConversationSettings, ResumeSettings, RetrySettings, TimeoutSettings
from proxy.engine import Engine, Stream, StreamState
from proxy.engine.breaker import Breakers
from proxy.engine.runtime import AgentRegistry, AgentRuntime, ModelChoice
from proxy.events import End, Event
from proxy.state.memory import MemoryState

STALL = "<stall>"
"""A step that waits forever (until a deadline or a cancellation cuts it)."""

Step = str | BaseException


def http_error(status: int, *, in_stream: bool = False, retry_after: float | None = None) -> ModelHTTPError:
    return ModelHTTPError(
        status, "scripted", {"error": "scripted"}, in_stream=in_stream, retry_after=retry_after
    )


@dataclass
class Script:
    """What the upstream does on each call: a list of steps (text chunks, an exception to raise, or
    `STALL`). Calls past the end of the script repeat its last entry."""

    calls: list[list[Step]]
    made: int = 0
    closed: int = 0
    """Calls whose stream was closed before it finished (the upstream request was cancelled)."""

    async def stream(self, messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        steps = self.calls[min(self.made, len(self.calls) - 1)]
        self.made += 1
        finished = False
        try:
            for step in steps:
                if isinstance(step, BaseException):
                    finished = True
                    raise step
                if step == STALL:
                    await asyncio.Event().wait()
                yield step
            finished = True
        finally:
            if not finished:
                self.closed += 1


class ScriptedModel(FunctionModel):
    """A FunctionModel whose streamed answers finish with `stop`, as an OpenAI upstream's do."""

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: Any = None,
    ) -> AsyncIterator[StreamedResponse]:
        async with super().request_stream(
            messages, model_settings, model_request_parameters, run_context
        ) as response:
            response.finish_reason = "stop"
            yield response


def runtime(
    *scripts: Script,
    max_attempts: int = 3,
    mid_stream: str = "restart",
    backoff_s: float = 0.0,
    first_token_s: float = 5.0,
    idle_s: float = 5.0,
    total_s: float = 10.0,
) -> AgentRuntime:
    """An agent whose models m0, m1, ... (primary first) play `scripts`."""
    models = [
        ModelChoice(f"m{i}", ScriptedModel(stream_function=script.stream, model_name=f"m{i}"))
        for i, script in enumerate(scripts)
    ]
    return AgentRuntime(
        name="unit",
        agent=Agent(models[0].model),
        models=models,
        retry=RetrySettings(
            max_attempts=max_attempts,
            mid_stream=mid_stream,
            backoff_initial_s=backoff_s,
            backoff_max_s=max(backoff_s, 0.01),
            backoff_jitter_s=0,
        ),
        timeouts=TimeoutSettings(first_token_s=first_token_s, idle_s=idle_s, total_s=total_s),
        max_tool_calls=3,
        allow_system_messages=False,
        direct=True,
    )


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    engine: Engine
    clock: FakeClock = field(default_factory=FakeClock)

    @property
    def breakers(self) -> Breakers:
        return self.engine.breakers


def harness(rt: AgentRuntime, *, failure_threshold: int = 5, cooldown_s: float = 30.0) -> Harness:
    clock = FakeClock()
    engine = Engine(
        AgentRegistry(agents={rt.name: rt}),
        MemoryState(ConversationSettings(), ResumeSettings(), max_logs=100),
        Breakers(failure_threshold, cooldown_s, clock=clock),
        max_concurrent_streams=10,
        max_prompt_chars=1000,
    )
    return Harness(engine, clock)


@dataclass
class Seen:
    """A stream's public events with the state the stream was in when each was produced."""

    events: list[Event]
    states: list[StreamState]
    internal: list[Event]

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.events]

    @property
    def end(self) -> End:
        end = self.events[-1]
        assert isinstance(end, End)
        return end

    def of(self, kind: str) -> list[Any]:
        return [e for e in self.events if e.type == kind]

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)


async def play(stream: Stream, on_event: Callable[[Stream, Event], None] | None = None) -> Seen:
    """Iterate `stream` to its end (closing it in any case) and check the protocol's invariants."""
    seen = Seen([], [], [])
    try:
        async with asyncio.timeout(5):
            async for event in stream:
                if event.internal:
                    seen.internal.append(event)
                else:
                    seen.events.append(event)
                    seen.states.append(stream.state)
                if on_event is not None:
                    on_event(stream, event)
    finally:
        await stream.aclose()
    assert [e.seq for e in seen.events] == list(range(len(seen.events)))
    assert seen.types[0] == "start" and seen.types.count("end") == 1 and seen.types[-1] == "end"
    assert stream.state is StreamState.ENDED and stream.end is seen.events[-1]
    return seen
