"""One upstream attempt: pydantic-ai's events -> our events, under the attempt's deadlines.

Two paths give the same events, history and errors:
- agents with tools or structured output run the whole agent loop (`run_stream_events`: it never
  debounces, runs tools, and leaving its `async with` cancels the run and the upstream request);
- plain text agents without tools take the direct model stream (`model_request_stream`): the same
  model request without the agent loop's layers, which cost most of the CPU per chunk. With the lean
  model, chunks that only add text arrive as `PlainText` (`proxy/plain_text.py`), those read
  together in one, and go up as one `DeltaRun`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AsyncExitStack, aclosing, suppress
from dataclasses import dataclass
from typing import Any

import pydantic_core
from pydantic_ai import (
    AgentRunResultEvent,
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ToolCallPart,
    ToolCallPartDelta,
)
from pydantic_ai.direct import model_request_stream
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, UserPromptPart
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.settings import ModelSettings, merge_model_settings
from pydantic_ai.usage import RequestUsage, RunUsage, UsageLimits

from proxy.engine.client_run import run_spec, tool_calls
from proxy.engine.failures import IncompleteStream
from proxy.engine.inputs import StreamInput
from proxy.engine.pacing import Pacer
from proxy.engine.runtime import AgentRuntime, ModelChoice
from proxy.events import Delta, Event, FunctionCall, Output, ToolCall, ToolResult, Usage
from proxy.plain_text import PlainText, PlainTextSource
from proxy.structured import OUTPUT_TOOL_PREFIX

TEXT_ONLY = ModelRequestParameters(output_mode="text", allow_text_output=True)


@dataclass(slots=True)
class DeltaRun:
    """`delta`s of chunks that arrived together, passed up the engine's layers as one item."""

    deltas: list[Delta]


@dataclass(slots=True)
class AttemptResult:
    """What a successful attempt leaves behind (not sent as an event)."""

    messages: list[ModelMessage]
    output: Any
    finish_reason: str | None
    tool_calls: list[FunctionCall] | None = None
    """The run ended with calls of the client's tools, which the client must answer."""


AttemptItem = Event | DeltaRun | AttemptResult
"""What an attempt yields: events (`delta`s of chunks read together as one `DeltaRun`), then its result."""


class _PartialOutput:
    """Snapshots of the structured output while its tool-call arguments stream in."""

    def __init__(self, stream_id: str) -> None:
        self._stream_id = stream_id
        self._index: int | None = None
        self._args = ""
        self._last: Any = None

    def start(self, index: int, part: ToolCallPart) -> Output | None:
        if not part.tool_name.startswith(OUTPUT_TOOL_PREFIX):
            return None
        self._index, self._args, self._last = index, "", None
        return self.feed(index, part.args)

    def feed(self, index: int, args: str | dict[str, Any] | None) -> Output | None:
        if index != self._index or not args:
            return None
        if isinstance(args, dict):
            data: Any = args
        else:
            self._args += args
            try:
                data = pydantic_core.from_json(self._args, allow_partial=True)
            except ValueError:
                return None
        if not isinstance(data, dict) or data == self._last:
            return None
        self._last = data
        return Output(stream_id=self._stream_id, data=data, partial=True)


def _part_event(ev: object, stream_id: str, output: _PartialOutput | None, text: bool = True) -> Event | None:
    """Our event for one model-stream event, if it carries anything a client sees; `text=False`
    when the model's text is the JSON answer, which goes out once, validated, as `output`."""
    if isinstance(ev, PartDeltaEvent):
        if isinstance(ev.delta, TextPartDelta) and ev.delta.content_delta and text:
            return Delta(stream_id=stream_id, text=ev.delta.content_delta)
        if output is not None and isinstance(ev.delta, ToolCallPartDelta):
            return output.feed(ev.index, ev.delta.args_delta)
    elif isinstance(ev, PartStartEvent):
        # The first chunk of a part arrives here, not as a delta.
        if isinstance(ev.part, TextPart) and ev.part.content and text:
            return Delta(stream_id=stream_id, text=ev.part.content)
        if output is not None and isinstance(ev.part, ToolCallPart):
            return output.start(ev.index, ev.part)
    return None


def _check_finished(response: ModelResponse | None, choice: ModelChoice) -> str:
    finish = response.finish_reason if response else None
    details = (response.provider_details or {}) if response else {}
    if finish is None or (choice.finish_in_details and "finish_reason" not in details):
        raise IncompleteStream("the upstream stream ended without a finish reason")
    return finish


def _last_response(messages: list[ModelMessage]) -> ModelResponse | None:
    for message in reversed(messages):
        if isinstance(message, ModelResponse):
            return message
    return None


def run_attempt(
    runtime: AgentRuntime,
    choice: ModelChoice,
    stream_id: str,
    request: StreamInput,
    pacer: Pacer,
    usage: Usage,
) -> AsyncGenerator[AttemptItem, None]:
    """This attempt's public events, then one AttemptResult (close the generator when done).

    `usage` is filled with what the upstream reported for this attempt's requests, also when the
    attempt fails (an agent run may have made several requests before its output was refused).
    Raises AttemptTimeout / AttemptCancelled from the pacer; upstream errors propagate as
    pydantic-ai raised them.
    """
    if runtime.direct and request.plain:
        return _direct_attempt(runtime, choice, stream_id, request, pacer, usage)
    return _agent_attempt(runtime, choice, stream_id, request, pacer, usage)


async def _agent_attempt(
    runtime: AgentRuntime,
    choice: ModelChoice,
    stream_id: str,
    request: StreamInput,
    pacer: Pacer,
    usage: Usage,
) -> AsyncGenerator[AttemptItem, None]:
    limits = UsageLimits(request_limit=runtime.max_tool_calls + 2, tool_calls_limit=runtime.max_tool_calls)
    output = _PartialOutput(stream_id) if runtime.structured else None
    spec = run_spec(runtime, request)
    async with (
        runtime.agent.run_stream_events(
            request.prompt,
            output_type=spec.output_type,
            model=choice.model,
            message_history=request.history,
            instructions=request.instructions,
            model_settings=spec.model_settings,
            usage_limits=limits,
            toolsets=spec.toolsets,
        ) as events,
        aclosing(pacer.paced(aiter(events))) as paced,
    ):
        try:
            async for ev in paced:
                event = _part_event(ev, stream_id, output, not spec.text_is_output)
                if event is not None:
                    yield event
                elif isinstance(ev, FunctionToolCallEvent) and ev.part.tool_name not in spec.client_tools:
                    yield ToolCall(
                        stream_id=stream_id,
                        tool_call_id=ev.part.tool_call_id,
                        name=ev.part.tool_name,
                        args=ev.part.args_as_dict(),
                    )
                elif isinstance(ev, FunctionToolResultEvent):
                    part = ev.part
                    yield ToolResult(
                        stream_id=stream_id,
                        tool_call_id=part.tool_call_id,
                        name=part.tool_name,
                        content=part.model_response_str()
                        if hasattr(part, "model_response_str")
                        else str(part.content),
                        outcome=getattr(part, "outcome", "success"),
                    )
                elif isinstance(ev, AgentRunResultEvent):
                    result = ev.result
                    messages = result.all_messages()
                    finish = _check_finished(_last_response(messages), choice)
                    calls = tool_calls(result.output)
                    if calls is None and (output is not None or spec.text_is_output):
                        yield Output(stream_id=stream_id, data=result.output, partial=False)
                    yield AttemptResult(
                        messages=messages,
                        output=result.output if calls is None else None,
                        finish_reason=finish,
                        tool_calls=calls,
                    )
        finally:
            with suppress(UserError):  # raised by a run that failed before it started: no request
                _record(usage, events.usage, events.usage.requests)


def _record(usage: Usage, reported: RunUsage | RequestUsage, requests: int) -> None:
    usage.input_tokens, usage.output_tokens = reported.input_tokens, reported.output_tokens
    usage.requests = requests


def _instructions(runtime: AgentRuntime, request: StreamInput) -> str | None:
    parts = [p for p in (runtime.instructions, request.instructions) if p]
    return "\n\n".join(parts) if parts else None


async def _direct_attempt(
    runtime: AgentRuntime,
    choice: ModelChoice,
    stream_id: str,
    request: StreamInput,
    pacer: Pacer,
    usage: Usage,
) -> AsyncGenerator[AttemptItem, None]:
    assert request.prompt is not None  # only plain requests take this path
    prompt = ModelRequest(
        parts=[UserPromptPart(content=request.prompt)], instructions=_instructions(runtime, request)
    )
    messages = [*request.history, prompt]
    settings: ModelSettings | None = merge_model_settings(
        runtime.model_settings, request.options.model_settings() if request.options else None
    )
    request_stream = model_request_stream(
        choice.model,
        messages,
        model_settings=settings,
        model_request_parameters=TEXT_ONLY,
        instrument=runtime.instrumentation or False,
    )
    async with AsyncExitStack() as stack:
        # Opening the stream already waits for the upstream's first chunk: pace it too.
        stream = await pacer.wait(stack.enter_async_context(request_stream))
        if isinstance(stream, PlainTextSource):
            stream.plain_text_events = True  # only the text is wanted here
        try:
            events: AsyncIterator[object] = aiter(stream)  # pydantic-ai's events, or `PlainText`
            async with aclosing(pacer.paced(events)) as paced:
                async for ev in paced:
                    if type(ev) is PlainText:
                        yield DeltaRun([Delta(stream_id=stream_id, text=text) for text in ev.texts])
                    elif (event := _part_event(ev, stream_id, None)) is not None:
                        yield event
        finally:
            # The request counts once its stream opened, as the agent loop counts it.
            _record(usage, stream.usage, 1)
        response = stream.get()
    finish = _check_finished(response, choice)
    if not any(isinstance(p, TextPart) and p.content for p in response.parts):
        raise IncompleteStream("the upstream answered with no text")
    yield AttemptResult(
        messages=[*messages, response],
        output=None,
        finish_reason=finish,
    )
