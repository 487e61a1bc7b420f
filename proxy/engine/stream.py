"""One stream: attempts, retries, fallbacks, deadlines and cancellation -> one ordered event sequence.

Contract (every transport relies on it): iterating a `Stream` yields `start` first and exactly one
`end` last, with `seq` rising by one per public event; after the last `retry` with `discard: true`
the `delta` texts concatenate to `end.text`. `cancel(reason)` ends the stream early with that
`finish_reason`. Closing the iterator (`aclose`, or cancelling the consuming task) cancels the agent
run and the upstream request; the iterator must be closed in a `finally`.

A stream is a state machine: `proxy/engine/states.py` names its states and every allowed move.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import replace
from typing import Any

from proxy.engine.attempt import AttemptItem, AttemptResult, DeltaRun, run_attempt
from proxy.engine.breaker import CircuitState
from proxy.engine.failures import AttemptFailed, Failure, classify
from proxy.engine.handoff import Handoff
from proxy.engine.inputs import StreamInput
from proxy.engine.pacing import AttemptCancelled, Pacer
from proxy.engine.retrying import Retries
from proxy.engine.runtime import AgentRuntime, ModelChoice
from proxy.engine.shared import StateError, StoredStream
from proxy.engine.states import TRANSITIONS, InvalidTransition, StreamState
from proxy.engine.stream_services import StreamServices
from proxy.events import (
    AttemptFinished,
    AttemptOutcome,
    AttemptStarted,
    CircuitChanged,
    Delta,
    End,
    Error,
    Event,
    Fallback,
    FinishReason,
    FunctionCall,
    Output,
    Retry,
    Start,
    ToolCall,
    ToolResult,
    Usage,
)
from proxy.log_fields import fields as log_fields
from proxy.observability.stream_log import STREAM_LOGGER

log = logging.getLogger(__name__)
_stream_log = logging.getLogger(STREAM_LOGGER)


class Stream:
    """An accepted request; iterate it once to run it."""

    def __init__(
        self,
        runtime: AgentRuntime,
        request: StreamInput,
        services: StreamServices,
        stream_id: str | None = None,
        arrived_at: float | None = None,
        owner: str | None = None,
        takeover_after: int | None = None,
    ) -> None:
        self.id = stream_id or f"str_{uuid.uuid4().hex[:20]}"
        self.runtime = runtime
        self.request = request
        self.owner = owner
        """Who may continue its conversation and resume it (a key's name; None without keys)."""
        self.state = StreamState.ADMITTED
        self.end: End | None = None
        """The `end` event once the stream produced it (its usage is what the upstream reported)."""
        self._services = services
        self._store = services.conversations
        self._breakers = services.breakers
        self._logs = services.logs
        self._takeover_after = takeover_after
        self._arrived = arrived_at if arrived_at is not None else time.monotonic()
        self._deadline = self._arrived + runtime.timeouts.total_s
        self._seq = 0 if takeover_after is None else takeover_after + 1
        self._cancel_reason: FinishReason | None = None
        self._cancelled = asyncio.Event()
        self._pacer: Pacer | None = None
        self._ticket: asyncio.Future[None] | None = None
        self._gen: AsyncGenerator[Event, None] | None = None
        self._own_task: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._handoff: Handoff | None = None
        self._detached = False
        self._closed = False
        # What the client holds so far; a discarding `retry` clears it.
        self._text: list[str] = []
        self._output: Any = None
        self._content_sent = False
        """Events a retry must discard (text, output, tool calls) were sent."""
        self._text_sent = False
        """Text or output was sent: what `mid_stream = "fail"` protects."""
        self._attempts = 0
        self._model = runtime.models[0].name
        """The model of the latest attempt: `end.model`."""
        self._usage = Usage()
        """What the upstream reported for every attempt's requests, the failed ones too."""
        self._failure: Failure | None = None
        """Why the last attempt (or the last model considered) failed."""

    def cancel(self, reason: FinishReason = "cancelled") -> None:
        """End the stream early with `reason`; a no-op once it ended."""
        if self.state is StreamState.ENDED or self._cancel_reason is not None:
            return
        self._cancel_reason = reason
        self._cancelled.set()
        if self._pacer is not None:
            self._pacer.cancel()
        if self._ticket is not None:
            self._ticket.cancel()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        if self._gen is None:
            self._gen = self._run()
            if self._services.grace_s > 0:
                self._handoff = Handoff()
                self._own_task = asyncio.create_task(self._run_on_own())
        if self._handoff is None:
            return await anext(self._gen)
        return await self._handoff.get()

    async def aclose(self) -> None:
        """The client is done with the stream. Before its `end` that means the client left: the
        stream is cancelled at once, or (with a grace period) runs on for a client to resume it."""
        if self._own_task is not None:
            if self.end is None and not self._detached:
                self._detached = True
                self._handoff = None
                self._watcher = asyncio.create_task(self._cancel_unless_followed())
            elif self.end is not None:
                await self._own_task
            return
        try:
            if self._gen is not None:
                if self.end is None:
                    self.cancel("cancelled")
                await self._gen.aclose()
        finally:
            self._close()

    async def _run_on_own(self) -> None:
        assert self._gen is not None
        try:
            async for event in self._gen:
                if self._handoff is not None:
                    self._handoff.put(event)
        finally:
            if self._handoff is not None:
                self._handoff.close()
            if self._watcher is not None:
                self._watcher.cancel()
            self._close()

    async def _cancel_unless_followed(self) -> None:
        """Cancelled by the stream's own task when the stream ends."""
        pause = self._services.grace_s
        while True:
            await asyncio.sleep(pause)
            if not await self._followed():
                self.cancel("cancelled")
                return
            pause = self._services.follow_check_s

    async def _followed(self) -> bool:
        try:
            return await self._logs.followed(self.id)
        except StateError:
            return False

    def _move(self, to: StreamState) -> None:
        if to not in TRANSITIONS[self.state]:
            raise InvalidTransition(f"stream {self.id}: {self.state} -> {to}")
        self.state = to

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.end is None and self._gen is not None:
            # Ended without its `end` (its task was cancelled): a client resuming it must not wait.
            self.end = self._end_event(self._cancel_reason or "cancelled")
            self._stamp(self.end)
        self.state = StreamState.ENDED
        self._services.on_close(self)

    def _stamp(self, event: Event) -> Event:
        if not event.internal:
            event.seq = self._seq
            self._seq += 1
            self._logs.append(self.id, event)
        return event

    # --- the whole stream ---------------------------------------------------------------------

    async def _run(self) -> AsyncGenerator[Event, None]:
        try:
            self._logs.begin(StoredStream(self.id, self.runtime.name, self.request, self.owner))
            yield self._stamp(self._opening())
            result: AttemptResult | None = None
            async with aclosing(self._models()) as items:
                async for item in items:
                    if isinstance(item, DeltaRun):
                        # All in the log before the first leaves, as `_took` holds all their text:
                        # closed between two, the stream's log and its `end` still agree.
                        for delta in item.deltas:
                            self._stamp(delta)
                        for delta in item.deltas:
                            yield delta
                    elif isinstance(item, AttemptResult):
                        result = item
                    else:
                        yield self._stamp(item)
            for event in await self._ending(result):
                yield self._stamp(event)
        except Exception:
            # A bug of ours must still not truncate the stream silently.
            log.exception("stream %s failed inside the engine", self.id)
            if self.end is None:
                self._failure = Failure.internal("internal error in the proxy")
                for event in await self._ending(None):
                    yield self._stamp(event)
        finally:
            self._close()

    def _opening(self) -> Event:
        """`start`; for a stream taken over from a lost process, the `retry` that discards what its
        client received from that process."""
        if self._takeover_after is None:
            return Start(
                stream_id=self.id,
                agent=self.runtime.name,
                model=self.runtime.models[0].name,
                conversation_id=self.request.conversation_id,
                created_at=time.time(),
            )
        self._move(StreamState.RETRYING)
        self._log_takeover("stream taken over", "stream_taken_over", after_seq=self._takeover_after)
        return Retry(
            stream_id=self.id,
            attempt=0,
            max_attempts=self.runtime.retry.max_attempts,
            reason="replica_lost",
            delay_s=0.0,
            discard=True,
        )

    async def _models(self) -> AsyncGenerator[AttemptItem, None]:
        """The agent's models in order until one answers, the stream gives up, or it is cancelled."""
        fallback_from: ModelChoice | None = None
        for choice in self.runtime.models:
            if choice is not self.runtime.models[0]:
                self._move(StreamState.FALLING_BACK)
            breaker = self._breakers[choice.name]
            allowed, changed = breaker.acquire()
            if changed is not None:
                yield self._circuit_changed(choice, changed)
            if not allowed:
                fallback_from = fallback_from or choice
                self._failure = self._failure or Failure.circuit_open(choice.name)
                continue
            if fallback_from is not None:
                yield Fallback(
                    stream_id=self.id,
                    agent=self.runtime.name,
                    from_model=fallback_from.name,
                    model=choice.name,
                    reason=self._failure.reason if self._failure else "circuit_open",
                )
                if self._attempts and self._failure is not None:
                    yield self._retry_event(self._failure, 0.0)
            fallback_from = choice
            async with aclosing(self._model_attempts(choice)) as items:
                async for item in items:
                    yield item
            if self._failure is None or self._cancel_reason is not None or not self._may_retry(self._failure):
                return

    # --- attempts on one model, under tenacity ----------------------------------------------------

    def _may_retry(self, failure: Failure | None) -> bool:
        """Whether another attempt (on this model or the next) may follow `failure`."""
        if failure is None or not failure.retryable:
            return False
        mid_stream = self.request.mid_stream or self.runtime.retry.mid_stream
        return not (self._text_sent and mid_stream == "fail")

    async def _model_attempts(self, choice: ModelChoice) -> AsyncGenerator[AttemptItem, None]:
        """Attempts on one model; leaves `self._failure` set when they are spent or given up."""
        breaker = self._breakers[choice.name]
        retries: Retries | None = None  # tenacity joins at the first failure
        while True:
            if self._cancel_reason is not None:
                self._failure = Failure.cancelled()
                breaker.release()
                return
            try:
                async with aclosing(self._attempt(choice)) as items:
                    async for item in items:
                        yield item
            except AttemptFailed as exc:
                self._failure = exc.failure
                if exc.failure.upstream_fault:
                    changed = breaker.record_failure(exc.failure.reason)
                    if changed is not None:
                        yield self._circuit_changed(choice, changed)
                else:
                    breaker.release()
                if retries is None:
                    retries = Retries(
                        self.runtime.retry,
                        self._deadline,
                        lambda error: isinstance(error, AttemptFailed) and self._may_retry(error.failure),
                        self._cancelled,
                    )
                await retries.failed(exc)
            else:
                self._failure = None
                changed = breaker.record_success()
                if changed is not None:
                    yield self._circuit_changed(choice, changed)
                return
            try:
                async with aclosing(retries.backoffs()) as backoffs:
                    async for delay in backoffs:
                        if self._failure is not None:
                            yield self._retry_event(self._failure, delay)
            except AttemptFailed:
                return  # spent (max_attempts or deadline) or not retryable: tenacity re-raised it

    async def _wait_to_start(self) -> None:
        """Queue at the start gate while the loop lags; AttemptFailed(cancelled) if the stream is
        ended meanwhile."""
        gate = self._services.gate
        ticket = gate.ticket() if gate is not None else None
        if ticket is None:
            return
        self._ticket = ticket
        try:
            await ticket
        except asyncio.CancelledError:
            if self._cancel_reason is None:
                raise
            raise AttemptFailed(Failure.cancelled()) from None
        finally:
            self._ticket = None

    async def _attempt(self, choice: ModelChoice) -> AsyncGenerator[AttemptItem, None]:
        await self._wait_to_start()
        self._attempts += 1
        self._model = choice.name
        self._move(StreamState.ATTEMPTING)
        self._pacer = pacer = Pacer(self.runtime.timeouts, self._deadline, self._services.lag)
        started = time.monotonic()
        yield AttemptStarted(
            stream_id=self.id, agent=self.runtime.name, model=choice.name, attempt=self._attempts
        )
        used = Usage()
        try:
            attempt = run_attempt(self.runtime, choice, self.id, self.request, pacer, used)
            async with aclosing(attempt) as items:
                async for item in items:
                    self._took(item)
                    yield item
        except AttemptCancelled:
            yield self._attempt_finished(choice, started, "cancelled", None)
            raise AttemptFailed(Failure.cancelled()) from None
        except InvalidTransition:
            raise
        except Exception as exc:
            failure = classify(exc)
            yield self._attempt_finished(choice, started, "error", failure)
            raise AttemptFailed(failure) from exc
        finally:
            pacer.close()
            self._pacer = None
            self._usage.add(used)
        yield self._attempt_finished(choice, started, "success", None)

    def _took(self, item: AttemptItem) -> None:
        """Keep what the client now holds; its first content moves the attempt to `streaming`."""
        if isinstance(item, DeltaRun):
            self._text.extend(delta.text for delta in item.deltas)
            self._text_sent = self._content_sent = True
        elif isinstance(item, (Delta, Output)):
            if isinstance(item, Delta):
                self._text.append(item.text)
            elif not item.partial:
                self._output = item.data
            self._text_sent = self._content_sent = True
        elif isinstance(item, (ToolCall, ToolResult)):
            self._content_sent = True
        else:
            return
        if self.state is not StreamState.STREAMING:
            self._move(StreamState.STREAMING)

    # --- the events the state machine emits ---------------------------------------------------

    def _circuit_changed(self, choice: ModelChoice, state: CircuitState) -> CircuitChanged:
        return CircuitChanged(stream_id=self.id, model=choice.name, state=state.value)

    def _attempt_finished(
        self, choice: ModelChoice, started: float, outcome: AttemptOutcome, failure: Failure | None
    ) -> AttemptFinished:
        return AttemptFinished(
            stream_id=self.id,
            agent=self.runtime.name,
            model=choice.name,
            outcome=outcome,
            error_type=failure.error_type if failure else None,
            reason=failure.reason if failure else None,
            duration_s=time.monotonic() - started,
        )

    def _retry_event(self, failure: Failure, delay: float) -> Retry:
        """`retry`, discarding what the client holds if the failed attempt sent content."""
        discard = self._content_sent
        if discard:
            self._text.clear()
            self._output = None
            self._text_sent = self._content_sent = False
        if self.state is not StreamState.FALLING_BACK:
            self._move(StreamState.RETRYING)
        return Retry(
            stream_id=self.id,
            attempt=self._attempts,
            max_attempts=self.runtime.retry.max_attempts,
            reason=failure.reason,
            delay_s=round(delay, 3),
            discard=discard,
        )

    async def _ending(self, result: AttemptResult | None) -> list[Event]:
        """`error` (if the stream failed) and `end`; stores the answer in the conversation."""
        events: list[Event] = []
        finish: FinishReason
        stored = False
        if self._cancel_reason is not None and result is None:
            finish = self._cancel_reason
        elif result is not None:
            if result.tool_calls is not None:
                finish = "tool_calls"
            else:
                finish = "length" if result.finish_reason == "length" else "stop"
            stored = await self._store_answer(result)
        else:
            failure = self._failure or Failure.internal("no attempt ran")
            finish = failure.finish_reason
            events.append(
                Error(
                    stream_id=self.id, code=failure.code, message=failure.message, retryable=failure.retryable
                )
            )
        self.end = self._end_event(finish, stored, result.tool_calls if result else None)
        events.append(self.end)
        self._move(StreamState.ENDED)
        if self._takeover_after is not None:
            error = events[0] if isinstance(events[0], Error) else None
            self._log_takeover(
                "taken-over stream finished",
                "takeover_finished",
                outcome=finish,
                model=self.end.model,
                attempts=self.end.attempts,
                duration_s=round(self.end.duration_s, 6),
                error_code=error.code if error is not None else None,
            )
        return events

    def _log_takeover(self, message: str, event: str, **values: Any) -> None:
        """The replica that takes a stream over runs it with no client of its own, so the stream log
        (written by a transport's observer) has no line for it: these lines stand in."""
        fields = {"event": event, "stream_id": self.id, "agent": self.runtime.name, "key": self.owner}
        _stream_log.info(message, extra=log_fields(**fields, **values))

    async def _store_answer(self, result: AttemptResult) -> bool:
        conversation = self.request.conversation_id
        if conversation is None:
            return False
        try:
            await self._store.put(conversation, result.messages, self.owner)
        except StateError:
            log.warning("stream %s: its answer could not be stored in conversation state", self.id)
            return False
        return True

    def _end_event(
        self, finish: FinishReason, stored: bool = False, tool_calls: list[FunctionCall] | None = None
    ) -> End:
        # A new conversation whose first turn was not stored does not exist under the id `start` named.
        request = self.request
        return End(
            stream_id=self.id,
            finish_reason=finish,
            text="".join(self._text),
            output=self._output,
            usage=replace(self._usage),
            attempts=self._attempts,
            model=self._model,
            ttft_s=None,
            duration_s=time.monotonic() - self._arrived,
            conversation_id=request.conversation_id if stored or not request.new_conversation else None,
            tool_calls=tool_calls,
        )
