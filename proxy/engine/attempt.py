"""One upstream attempt: pydantic-ai's event stream -> our events, under the attempt's deadlines.

Uses `run_stream_events`: it never debounces, runs the whole tool loop, and leaving its `async with`
(an exception, a timeout, the consumer closing us) cancels the run and closes the upstream request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pydantic_core
from pydantic_ai import (
    AgentRunResultEvent,
    CancellationToken,
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ToolCallPart,
    ToolCallPartDelta,
)
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.usage import UsageLimits

from proxy.agents import AgentRuntime, ModelChoice
from proxy.engine.failures import AttemptTimeout, IncompleteStream
from proxy.engine.inputs import StreamInput
from proxy.events import Delta, Event, Output, ToolCall, ToolResult, Usage
from proxy.structured import OUTPUT_TOOL_PREFIX


@dataclass(slots=True)
class AttemptResult:
    """What a successful attempt leaves behind (not sent as an event)."""

    messages: list[ModelMessage]
    usage: Usage
    output: Any
    finish_reason: str | None


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


def _last_response(messages: list[ModelMessage]) -> ModelResponse | None:
    for message in reversed(messages):
        if isinstance(message, ModelResponse):
            return message
    return None


async def run_attempt(
    runtime: AgentRuntime,
    choice: ModelChoice,
    stream_id: str,
    request: StreamInput,
    token: CancellationToken,
    stream_deadline: float,
) -> AsyncIterator[Event | AttemptResult]:
    """Yield this attempt's public events, then one AttemptResult.

    Raises AttemptTimeout when the first event (`first_token`), the gap between events (`idle`)
    or the stream's deadline (`total`) runs out; upstream errors propagate as pydantic-ai raised them.
    """
    loop = asyncio.get_running_loop()
    timeouts = runtime.timeouts
    limits = UsageLimits(request_limit=runtime.max_tool_calls + 2, tool_calls_limit=runtime.max_tool_calls)
    async with runtime.agent.run_stream_events(
        request.prompt,
        model=choice.model,
        message_history=request.history,
        instructions=request.instructions,
        model_settings=request.options.model_settings() if request.options else None,
        usage_limits=limits,
        cancellation_token=token,
    ) as events:
        iterator = aiter(events)
        output = _PartialOutput(stream_id) if runtime.structured else None
        kind, limit = "first_token", timeouts.first_token_s
        while True:
            deadline = loop.time() + limit
            if deadline >= stream_deadline:
                deadline, kind, limit = stream_deadline, "total", timeouts.total_s
            try:
                async with asyncio.timeout_at(deadline):
                    ev = await anext(iterator)
            except StopAsyncIteration:
                return
            except TimeoutError as exc:
                raise AttemptTimeout(kind, limit) from exc
            kind, limit = "idle", timeouts.idle_s
            if isinstance(ev, PartDeltaEvent):
                if isinstance(ev.delta, TextPartDelta) and ev.delta.content_delta:
                    yield Delta(stream_id=stream_id, text=ev.delta.content_delta)
                elif output is not None and isinstance(ev.delta, ToolCallPartDelta):
                    snapshot = output.feed(ev.index, ev.delta.args_delta)
                    if snapshot is not None:
                        yield snapshot
            elif isinstance(ev, PartStartEvent):
                # The first chunk of a part arrives here, not as a delta.
                if isinstance(ev.part, TextPart) and ev.part.content:
                    yield Delta(stream_id=stream_id, text=ev.part.content)
                elif output is not None and isinstance(ev.part, ToolCallPart):
                    snapshot = output.start(ev.index, ev.part)
                    if snapshot is not None:
                        yield snapshot
            elif isinstance(ev, FunctionToolCallEvent):
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
                response = _last_response(messages)
                finish = response.finish_reason if response else None
                details = (response.provider_details or {}) if response else {}
                if finish is None or (choice.finish_in_details and "finish_reason" not in details):
                    raise IncompleteStream("the upstream stream ended without a finish reason")
                usage = result.usage
                if output is not None:
                    yield Output(stream_id=stream_id, data=result.output, partial=False)
                yield AttemptResult(
                    messages=messages,
                    usage=Usage(
                        input_tokens=usage.input_tokens,
                        output_tokens=usage.output_tokens,
                        requests=usage.requests,
                    ),
                    output=result.output,
                    finish_reason=finish,
                )
