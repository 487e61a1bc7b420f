"""One stream: attempts, retries, fallbacks, deadlines and cancellation -> one ordered event sequence.

Contract (every transport relies on it): iterating a `Stream` yields `start` first and exactly one
`end` last, with `seq` rising by one per public event; after the last `retry` with `discard: true`
the `delta` texts concatenate to `end.text`. `cancel(reason)` ends the stream early with that
`finish_reason`. Closing the iterator (`aclose`, or cancelling the consuming task) cancels the agent
run and the upstream request; the iterator must be closed in a `finally`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from proxy.conversations import ConversationStore
from proxy.engine.attempt import AttemptResult, run_attempt
from proxy.engine.breaker import Breakers
from proxy.engine.failures import AttemptFailed, Failure, classify
from proxy.engine.inputs import StreamInput
from proxy.engine.pacing import AttemptCancelled, Pacer
from proxy.engine.retrying import build_retrying
from proxy.engine.runtime import AgentRuntime, ModelChoice
from proxy.events import (
    AttemptFinished,
    AttemptStarted,
    CircuitChanged,
    Delta,
    End,
    Error,
    Event,
    Fallback,
    FinishReason,
    Output,
    Retry,
    Start,
    ToolCall,
    ToolResult,
    Usage,
)

log = logging.getLogger(__name__)

_CANCELLED = Failure("cancelled", "cancelled", "cancelled", False, "cancelled", upstream_fault=False)


class StreamState(enum.Enum):
    WAITING = "waiting"
    """No content yet from the current attempt."""
    STREAMING = "streaming"
    RETRYING = "retrying"
    ENDED = "ended"


class Stream:
    """An accepted request; iterate it once to run it."""

    def __init__(
        self,
        runtime: AgentRuntime,
        request: StreamInput,
        store: ConversationStore,
        breakers: Breakers,
        on_close: Callable[[Stream], None],
        stream_id: str | None = None,
        arrived_at: float | None = None,
    ) -> None:
        self.id = stream_id or f"str_{uuid.uuid4().hex[:20]}"
        self.runtime = runtime
        self.state = StreamState.WAITING
        self.request = request
        self._store = store
        self._breakers = breakers
        self._on_close = on_close
        self._arrived = arrived_at if arrived_at is not None else time.monotonic()
        self._seq = 0
        self._cancel_reason: FinishReason | None = None
        self._cancelled = asyncio.Event()
        self._pacer: Pacer | None = None
        self._gen: AsyncGenerator[Event, None] | None = None
        self._closed = False
        self.end: End | None = None
        """The `end` event once the stream produced it (its usage is what the upstream reported)."""

    def cancel(self, reason: FinishReason = "cancelled") -> None:
        """End the stream early with `reason`; a no-op once it ended."""
        if self.state is StreamState.ENDED or self._cancel_reason is not None:
            return
        self._cancel_reason = reason
        self._cancelled.set()
        if self._pacer is not None:
            self._pacer.cancel()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        if self._gen is None:
            self._gen = self._run()
        return await anext(self._gen)

    async def aclose(self) -> None:
        try:
            if self._gen is not None:
                await self._gen.aclose()
        finally:
            self._finish()

    def _finish(self) -> None:
        if not self._closed:
            self._closed = True
            self.state = StreamState.ENDED
            self._on_close(self)

    def _stamp(self, event: Event) -> Event:
        if not event.internal:
            event.seq = self._seq
            self._seq += 1
        return event

    async def _run(self) -> AsyncGenerator[Event, None]:
        run = _Run(self)
        ended = False
        try:
            async for event in run.events():
                if isinstance(event, End):
                    ended, self.end = True, event
                yield self._stamp(event)
        except Exception:
            # A bug of ours must still not truncate the stream silently.
            log.exception("stream %s failed inside the engine", self.id)
            if not ended:
                yield self._stamp(
                    Error(
                        stream_id=self.id,
                        code="internal_error",
                        message="internal error in the proxy",
                        retryable=False,
                    )
                )
                self.end = run.end("error")
                yield self._stamp(self.end)
        finally:
            self._finish()


class _Run:
    """The mutable state of one stream's execution (kept off `Stream` to keep its API small)."""

    def __init__(self, stream: Stream) -> None:
        self.s = stream
        self.rt = stream.runtime
        self.parts: list[str] = []
        self.output: Any = None
        self.attempts = 0
        self.ttft: float | None = None
        self.deadline = stream._arrived + self.rt.timeouts.total_s
        self.sleep_for: float | None = None
        self.content_sent = False
        """Events a retry must discard (text, output, tool calls) were sent."""
        self.text_sent = False
        """Text or output was sent: what `mid_stream = "fail"` protects."""
        self.failure: Failure | None = None
        self.give_up = False

    async def _record_sleep(self, seconds: float) -> None:
        self.sleep_for = seconds

    async def events(self) -> AsyncIterator[Event]:
        s, rt = self.s, self.rt
        yield Start(
            stream_id=s.id,
            agent=rt.name,
            model=rt.models[0].name,
            conversation_id=s.request.conversation_id,
            created_at=time.time(),
        )
        result: AttemptResult | None = None
        considered: ModelChoice | None = None
        ran_before = False
        for choice in rt.models:
            breaker = s._breakers[choice.name]
            allowed, changed = breaker.acquire()
            if changed is not None:
                yield CircuitChanged(stream_id=s.id, model=choice.name, state=changed.value)
            if not allowed:
                considered = considered or choice
                self.failure = self.failure or Failure(
                    "circuit_open",
                    "upstream_unavailable",
                    "circuit_open",
                    True,
                    f"the circuit breaker of {choice.name} is open",
                )
                continue
            if considered is not None:
                yield Fallback(
                    stream_id=s.id,
                    agent=rt.name,
                    from_model=considered.name,
                    model=choice.name,
                    reason=self.failure.reason if self.failure else "circuit_open",
                )
            if ran_before and self.failure is not None:
                async for event in self._announce_retry(self.failure, 0.0):
                    yield event
            considered, ran_before = choice, True
            async for item in self._model_attempts(choice):
                if isinstance(item, AttemptResult):
                    result = item
                else:
                    yield item
            if result is not None or self.give_up or s._cancel_reason is not None:
                break
        async for event in self._finish(result):
            yield event

    async def _model_attempts(self, choice: ModelChoice) -> AsyncIterator[Event | AttemptResult]:
        """Attempts on one model under tenacity; leaves `self.failure` set when they are spent."""
        s, rt = self.s, self.rt
        breaker = s._breakers[choice.name]
        self.sleep_for = None
        retrying = build_retrying(rt.retry, self.deadline, self._record_sleep)
        try:
            async for attempt in retrying:
                if self.sleep_for is not None and self.failure is not None:
                    async for event in self._announce_retry(self.failure, self.sleep_for):
                        yield event
                    self.sleep_for = None
                try:
                    if s._cancel_reason is not None:
                        raise AttemptFailed(_CANCELLED)
                    async for item in self._attempt(choice):
                        yield item
                except AttemptFailed as exc:
                    self.failure = exc.failure
                    if exc.failure.upstream_fault:
                        changed = breaker.record_failure()
                        if changed is not None:
                            yield CircuitChanged(stream_id=s.id, model=choice.name, state=changed.value)
                    else:
                        breaker.release()
                    mid_stream = s.request.mid_stream or rt.retry.mid_stream
                    if not exc.failure.retryable or (self.text_sent and mid_stream == "fail"):
                        self.give_up = True
                        return
                    attempt.retry_state.set_exception((type(exc), exc, exc.__traceback__))
                else:
                    self.failure = None
                    changed = breaker.record_success()
                    if changed is not None:
                        yield CircuitChanged(stream_id=s.id, model=choice.name, state=changed.value)
                    attempt.retry_state.set_result(None)
        except AttemptFailed:
            return

    async def _attempt(self, choice: ModelChoice) -> AsyncIterator[Event | AttemptResult]:
        s, rt = self.s, self.rt
        self.attempts += 1
        s.state = StreamState.WAITING
        s._pacer = pacer = Pacer(rt.timeouts, self.deadline)
        started = time.monotonic()
        yield AttemptStarted(stream_id=s.id, agent=rt.name, model=choice.name, attempt=self.attempts)
        try:
            async for item in run_attempt(rt, choice, s.id, s.request, pacer):
                if isinstance(item, (Delta, Output)):
                    if self.ttft is None:
                        self.ttft = time.monotonic() - s._arrived
                    if isinstance(item, Delta):
                        self.parts.append(item.text)
                    elif not item.partial:
                        self.output = item.data
                    self.text_sent = self.content_sent = True
                    s.state = StreamState.STREAMING
                elif isinstance(item, (ToolCall, ToolResult)):
                    self.content_sent = True
                    s.state = StreamState.STREAMING
                yield item
        except AttemptCancelled:
            yield self._attempt_finished(choice, started, "cancelled", None)
            raise AttemptFailed(_CANCELLED) from None
        except Exception as exc:
            failure = classify(exc)
            yield self._attempt_finished(choice, started, "error", failure)
            raise AttemptFailed(failure) from exc
        finally:
            pacer.close()
        yield self._attempt_finished(choice, started, "success", None)

    def _attempt_finished(
        self, choice: ModelChoice, started: float, outcome: Any, failure: Failure | None
    ) -> AttemptFinished:
        return AttemptFinished(
            stream_id=self.s.id,
            agent=self.rt.name,
            model=choice.name,
            outcome=outcome,
            error_type=failure.error_type if failure else None,
            reason=failure.reason if failure else None,
            duration_s=time.monotonic() - started,
        )

    async def _announce_retry(self, failure: Failure, delay: float) -> AsyncIterator[Event]:
        s = self.s
        discard = self.content_sent
        if discard:
            self.parts.clear()
            self.output = None
            self.text_sent = self.content_sent = False
        s.state = StreamState.RETRYING
        yield Retry(
            stream_id=s.id,
            attempt=self.attempts,
            max_attempts=self.rt.retry.max_attempts,
            reason=failure.reason,
            delay_s=round(delay, 3),
            discard=discard,
        )
        if delay > 0:
            try:
                async with asyncio.timeout(delay):
                    await s._cancelled.wait()
            except TimeoutError:
                pass

    async def _finish(self, result: AttemptResult | None) -> AsyncIterator[Event]:
        s = self.s
        usage = result.usage if result else Usage()
        finish: FinishReason
        if s._cancel_reason is not None and result is None:
            finish = s._cancel_reason
        elif result is not None:
            finish = "length" if result.finish_reason == "length" else "stop"
            if s.request.conversation_id is not None:
                s._store.put(s.request.conversation_id, result.messages)
        else:
            failure = self.failure or Failure(
                "internal_error", "internal_error", "internal", False, "no attempt ran"
            )
            finish = failure.finish_reason
            yield Error(
                stream_id=s.id, code=failure.code, message=failure.message, retryable=failure.retryable
            )
        yield self.end(finish, usage, stored=result is not None)
        s.state = StreamState.ENDED

    def end(self, finish: FinishReason, usage: Usage | None = None, stored: bool = False) -> End:
        s = self.s
        # A new conversation whose first turn failed was never stored under the id `start` announced.
        request = s.request
        conversation_id = request.conversation_id if stored or not request.new_conversation else None
        return End(
            stream_id=s.id,
            finish_reason=finish,
            text="".join(self.parts),
            output=self.output,
            usage=usage or Usage(),
            attempts=self.attempts,
            ttft_s=self.ttft,
            duration_s=time.monotonic() - s._arrived,
            conversation_id=conversation_id,
        )
