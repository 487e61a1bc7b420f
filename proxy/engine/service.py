"""The engine as the transports see it: admit a request (or refuse it with a `Refused` of
`proxy.engine.refusals`), resume a stream from its log (taking it over when its process was lost),
track running streams, and drain them at shutdown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING

from pydantic_ai.messages import ModelMessage

from proxy.auth.identity import ANONYMOUS, Caller, Identity
from proxy.conversations import new_conversation_id
from proxy.engine.breaker import Breakers
from proxy.engine.client_run import admit_format, admit_tools
from proxy.engine.inputs import (
    ChatMessage,
    ClientTools,
    ResponseFormat,
    RunOptions,
    StreamInput,
    chat_input,
    content_text,
    has_images,
)
from proxy.engine.refusals import (
    Draining,
    ForbiddenAgent,
    InvalidConversationId,
    InvalidPrompt,
    Overloaded,
    PromptTooLong,
    StateUnavailable,
    UnknownAgent,
    UnknownConversation,
    UnknownStream,
)
from proxy.engine.runtime import AgentRegistry
from proxy.engine.shared import (
    OwnerLost,
    SharedState,
    StateError,
    StateMetrics,
    UnknownStreamError,
)
from proxy.engine.start_gate import StartGate
from proxy.engine.stored import StoredAnswer, last_answer
from proxy.engine.stream import Stream
from proxy.engine.stream_services import StreamServices
from proxy.events import Event
from proxy.loop_lag import LoopLag

if TYPE_CHECKING:
    from proxy.auth.limits import Grant, Limiter

_UNAVAILABLE = "the proxy's shared state cannot be reached; retry shortly"


class Engine:
    def __init__(
        self,
        registry: AgentRegistry,
        state: SharedState,
        breakers: Breakers,
        *,
        max_concurrent_streams: int,
        max_prompt_chars: int,
        grace_s: float = 0.0,
        metrics: StateMetrics | None = None,
        limiter: Limiter | None = None,
        lag: LoopLag | None = None,
    ) -> None:
        self.registry = registry
        self.state = state
        self.store = state.conversations
        self.breakers = breakers
        self.gate = StartGate(lag) if lag is not None else None
        """Paces attempt starts while `lag` says the event loop is overloaded."""
        self._services = StreamServices(
            state.conversations, breakers, state.logs, self._closed, grace_s, lag=lag, gate=self.gate
        )
        self._metrics = metrics
        self._limiter = limiter
        self._grants: dict[Stream, Grant] = {}
        self.active: set[Stream] = set()
        self.draining = False
        self._max_streams = max_concurrent_streams
        self._max_prompt = max_prompt_chars
        self._idle = asyncio.Event()
        self._idle.set()

    def check_agent(self, agent: str) -> None:
        if agent not in self.registry.agents:
            raise UnknownAgent(agent)

    def resolve_agent(self, model: str) -> str:
        """The agent that an API door's `model` names (its name or one of its `aliases`)."""
        agent = self.registry.resolve(model)
        if agent is None:
            raise UnknownAgent(model)
        return agent

    async def open(
        self,
        agent: str,
        prompt: object,
        conversation_id: object = None,
        *,
        arrived_at: float | None = None,
        caller: Caller | None = None,
    ) -> Stream:
        """A new stream on the proxy's own protocol, not yet running; raises `Refused` and then
        changes nothing. Its answer is stored in the conversation (a new one if none given), owned
        by the caller (None: anonymous, no limits)."""
        identity = self._admit(agent, caller)
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidPrompt("`prompt` must be a non-empty string")
        if len(prompt) > self._max_prompt:
            raise PromptTooLong(f"`prompt` is over {self._max_prompt} characters")
        if conversation_id is not None and not isinstance(conversation_id, str):
            raise InvalidConversationId("`conversation_id` must be a string")
        request = StreamInput(prompt, conversation_id=conversation_id)
        if conversation_id is None:
            request.conversation_id = new_conversation_id()
            request.new_conversation = True
        else:
            request.history = await self._history(conversation_id, identity)
        return await self._start(agent, request, arrived_at, caller)

    async def _history(self, conversation_id: str, identity: Identity) -> list[ModelMessage]:
        try:
            found = await self.store.get(conversation_id, identity.name)
        except StateError:
            raise StateUnavailable(_UNAVAILABLE, retry_after=1) from None
        if found is None:
            raise UnknownConversation(conversation_id)
        return found

    async def open_chat(
        self,
        agent: str,
        messages: list[ChatMessage],
        options: RunOptions | None = None,
        *,
        tools: ClientTools | None = None,
        response_format: ResponseFormat | None = None,
        arrived_at: float | None = None,
        caller: Caller | None = None,
        discards: bool = False,
        previous: str | None = None,
        store_as: str | None = None,
        client_system: bool = False,
    ) -> Stream:
        """A new stream for an OpenAI-style message list. `agent` is the client's `model`: an
        agent's name or alias. By default nothing is stored (the client keeps the history); with
        `previous`, the stored conversation of that id comes before `messages` (`UnknownConversation`
        if the caller has none of that id), and with `store_as` the finished run is stored as a new
        conversation of that id.

        `tools` are the client's: a call of one ends the stream with `finish_reason: "tool_calls"`.
        `discards`: the client can drop content on a `retry` with `discard: true`, so the agent's
        `mid_stream = "restart"` applies; without it a failure after content ends the stream.
        `client_system`: the protocol gives the system prompt to the client (the Messages API), so
        its system messages are used as instructions whatever the agent's `allow_system_messages`."""
        agent = self.resolve_agent(agent)
        identity = self._admit(agent, caller)
        runtime = self.registry.agents[agent]
        admit_tools(runtime, tools)
        request = chat_input(
            messages,
            runtime.allow_system_messages or client_system,
            options,
            tools=tools,
            response_format=admit_format(runtime, response_format),
            discards=discards,
            prior=await self._history(previous, identity) if previous is not None else (),
        )
        if store_as is not None:
            request.conversation_id = store_as
            request.new_conversation = True
        if request.prompt is not None:  # None: the model answers the results of the client's tools
            prompt = content_text(request.prompt)
            if not prompt.strip() and not has_images(request.prompt):
                raise InvalidPrompt("the last user message has no text")
            if len(prompt) > self._max_prompt:
                raise PromptTooLong(f"the last message is over {self._max_prompt} characters")
        return await self._start(agent, request, arrived_at, caller)

    async def stored_answer(self, conversation_id: str, caller: Caller | None = None) -> StoredAnswer:
        """The last answer of the caller's conversation; raises `UnknownConversation` (also for
        another caller's) or `StateUnavailable`."""
        identity = caller.identity if caller is not None else ANONYMOUS
        answer = last_answer(await self._history(conversation_id, identity))
        if answer is None:
            raise UnknownConversation(conversation_id)
        return answer

    async def forget(self, conversation_id: str, caller: Caller | None = None) -> None:
        """Delete the caller's conversation; raises `UnknownConversation` or `StateUnavailable`."""
        owner = (caller.identity if caller is not None else ANONYMOUS).name
        try:
            deleted = await self.store.delete(conversation_id, owner)
        except StateError:
            raise StateUnavailable(_UNAVAILABLE, retry_after=1) from None
        if not deleted:
            raise UnknownConversation(conversation_id)

    def check_accepting(self) -> None:
        """Raise `Draining` once the proxy is shutting down."""
        if self.draining:
            raise Draining("the proxy is shutting down; retry on another instance", retry_after=1)

    def _admit(self, agent: str, caller: Caller | None) -> Identity:
        self.check_accepting()
        self.check_agent(agent)
        identity = caller.identity if caller is not None else ANONYMOUS
        if not identity.may_use(agent):
            raise ForbiddenAgent(f"this key may not use agent {agent!r}")
        if not self.state.healthy:
            raise StateUnavailable(_UNAVAILABLE, retry_after=1)
        return identity

    async def _start(
        self, agent: str, request: StreamInput, arrived_at: float | None, caller: Caller | None
    ) -> Stream:
        if len(self.active) >= self._max_streams:
            raise Overloaded("too many concurrent streams", retry_after=1)
        grant = None
        if self._limiter is not None and caller is not None:
            grant = await self._limiter.admit(caller)
        stream = Stream(
            self.registry.agents[agent],
            request,
            self._services,
            arrived_at=arrived_at if arrived_at is not None else time.monotonic(),
            owner=caller.identity.name if caller is not None else ANONYMOUS.name,
        )
        self._track(stream)
        if grant is not None:
            self._grants[stream] = grant
        return stream

    def _track(self, stream: Stream) -> None:
        self.active.add(stream)
        self._idle.clear()

    async def resume(self, stream_id: str, after: int, caller: Caller | None = None) -> AsyncIterator[Event]:
        """The events of a stream after seq `after`, from its log, then live to its `end`, on any
        process. If the process running it is lost, this one takes it over. Raises `UnknownStream`
        (also for another caller's stream) or `StateUnavailable` before the first event."""
        owner = (caller.identity if caller is not None else ANONYMOUS).name
        try:
            logged = await self.state.logs.follow(stream_id, after, owner)
        except UnknownStreamError:
            self._count_resume("unknown")
            raise UnknownStream(stream_id) from None
        except StateError:
            self._count_resume("state_unavailable")
            raise StateUnavailable(_UNAVAILABLE, retry_after=1) from None
        self._count_resume("resumed")
        return self._resumed(logged)

    async def _resumed(self, logged: AsyncIterator[Event | OwnerLost]) -> AsyncGenerator[Event, None]:
        async with aclosing(logged) as items:  # type: ignore[type-var]
            async for item in items:
                if not isinstance(item, OwnerLost):
                    yield item
                    continue
                stream = await self._take_over(item)
                if stream is None:
                    continue  # another process took it over: its events arrive in the log
                try:
                    async for event in stream:
                        yield event
                finally:
                    await stream.aclose()
                return

    async def _take_over(self, lost: OwnerLost) -> Stream | None:
        try:
            stored = await self.state.logs.take_over(lost.stream_id)
        except StateError:
            return None
        if stored is None or stored.agent not in self.registry.agents:
            return None
        if self._metrics is not None:
            self._metrics.took_over()
        stream = Stream(
            self.registry.agents[stored.agent],
            stored.request,
            self._services,
            stream_id=stored.stream_id,
            owner=stored.owner,
            takeover_after=lost.last_seq,
        )
        self._track(stream)
        return stream

    def _count_resume(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.resumed(outcome)

    def _closed(self, stream: Stream) -> None:
        self.active.discard(stream)
        grant = self._grants.pop(stream, None)
        if grant is not None and self._limiter is not None:
            self._limiter.release(grant, stream.end)
        if not self.active:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> None:
        """Wait until no stream is running (raises TimeoutError)."""
        async with asyncio.timeout(timeout):
            await self._idle.wait()

    async def drain(self, timeout: float) -> None:
        """Refuse new streams, let running ones finish for `timeout` s, then end them as `shutdown`."""
        self.draining = True
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
            return
        except TimeoutError:
            pass
        for stream in list(self.active):
            stream.cancel("shutdown")
        try:
            async with asyncio.timeout(5):
                await self._idle.wait()
        except TimeoutError:
            pass
