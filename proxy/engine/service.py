"""The engine as the transports see it: admit a request (or refuse it with a `Refused` of
`proxy.engine.refusals`), track running streams, and drain them at shutdown."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from proxy.agents import AgentRegistry
from proxy.auth.identity import ANONYMOUS, Caller, Identity
from proxy.conversations import ConversationStore, OwnedConversations, new_conversation_id
from proxy.engine.breaker import Breakers
from proxy.engine.inputs import ChatMessage, RunOptions, StreamInput, chat_input
from proxy.engine.refusals import (
    Draining,
    ForbiddenAgent,
    InvalidConversationId,
    InvalidPrompt,
    Overloaded,
    PromptTooLong,
    UnknownAgent,
    UnknownConversation,
)
from proxy.engine.stream import Stream

if TYPE_CHECKING:
    from proxy.auth.limits import Grant, Limiter


class Engine:
    def __init__(
        self,
        registry: AgentRegistry,
        store: ConversationStore,
        breakers: Breakers,
        *,
        max_concurrent_streams: int,
        max_prompt_chars: int,
        limiter: Limiter | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.breakers = breakers
        self.active: set[Stream] = set()
        self.draining = False
        self._max_streams = max_concurrent_streams
        self._max_prompt = max_prompt_chars
        self._idle = asyncio.Event()
        self._idle.set()
        self._limiter = limiter
        self._grants: dict[Stream, Grant] = {}

    def check_agent(self, agent: str) -> None:
        if agent not in self.registry.agents:
            raise UnknownAgent(agent)

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
            found = self.store.get(conversation_id, identity.name)
            if found is None:
                raise UnknownConversation(conversation_id)
            request.history = found
        return await self._start(agent, request, arrived_at, caller)

    async def open_chat(
        self,
        agent: str,
        messages: list[ChatMessage],
        options: RunOptions | None = None,
        *,
        arrived_at: float | None = None,
        caller: Caller | None = None,
    ) -> Stream:
        """A new stream for an OpenAI-style message list; nothing is stored (the client keeps history)."""
        self._admit(agent, caller)
        runtime = self.registry.agents[agent]
        request = chat_input(messages, runtime.allow_system_messages, options)
        if len(request.prompt) > self._max_prompt:
            raise PromptTooLong(f"the last message is over {self._max_prompt} characters")
        return await self._start(agent, request, arrived_at, caller)

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
        return identity

    async def _start(
        self, agent: str, request: StreamInput, arrived_at: float | None, caller: Caller | None
    ) -> Stream:
        if len(self.active) >= self._max_streams:
            raise Overloaded("too many concurrent streams", retry_after=1)
        grant = None
        if self._limiter is not None and caller is not None:
            grant = await self._limiter.admit(caller)
        owner = caller.identity.name if caller is not None else ANONYMOUS.name
        stream = Stream(
            self.registry.agents[agent],
            request,
            OwnedConversations(self.store, owner),
            self.breakers,
            on_close=self._closed,
            arrived_at=arrived_at if arrived_at is not None else time.monotonic(),
        )
        self.active.add(stream)
        if grant is not None:
            self._grants[stream] = grant
        self._idle.clear()
        return stream

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
