"""Shared state for one process: conversations and a bounded set of stream logs in memory.

Logs hold the event objects themselves (nothing is encoded on the hot path). The newest
`max_logs` logs are kept; an ended log is dropped `resume_ttl_s` after its end.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable

from proxy.config import ConversationSettings, ResumeSettings
from proxy.conversations import MemoryConversationStore
from proxy.engine.shared import OwnerLost, StoredStream, UnknownStreamError
from proxy.events import End, Event


class _Log:
    __slots__ = ("ended_at", "events", "followers", "owner", "waiter")

    def __init__(self, owner: str | None) -> None:
        self.owner = owner
        self.events: list[Event] = []
        self.ended_at: float | None = None
        self.followers = 0
        self.waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        if self.waiter is not None:
            if not self.waiter.done():
                self.waiter.set_result(None)
            self.waiter = None

    async def changed(self) -> None:
        if self.waiter is None:
            self.waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self.waiter)


class MemoryStreamLogs:
    def __init__(
        self, max_logs: int, resume_ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max = max_logs
        self._ttl = resume_ttl_s
        self._clock = clock
        self._logs: OrderedDict[str, _Log] = OrderedDict()

    def begin(self, stored: StoredStream) -> None:
        self._logs[stored.stream_id] = _Log(stored.owner)
        self._evict()

    def _evict(self) -> None:
        now = self._clock()
        while self._logs:
            oldest = next(iter(self._logs.values()))
            ended = oldest.ended_at
            if len(self._logs) <= self._max and (ended is None or now - ended < self._ttl):
                return
            self._logs.popitem(last=False)

    def append(self, stream_id: str, event: Event) -> None:
        log = self._logs.get(stream_id)
        if log is None:
            return  # evicted while it ran: it can no longer be resumed
        log.events.append(event)
        if type(event) is End:
            log.ended_at = self._clock()
        log.wake()

    def _find(self, stream_id: str, owner: str | None) -> _Log:
        self._evict()
        log = self._logs.get(stream_id)
        if log is None or log.owner != owner:
            raise UnknownStreamError(stream_id)
        return log

    async def follow(
        self, stream_id: str, after: int, owner: str | None = None
    ) -> AsyncIterator[Event | OwnerLost]:
        log = self._find(stream_id, owner)
        return self._follow(log, after)

    async def _follow(self, log: _Log, after: int) -> AsyncIterator[Event | OwnerLost]:
        # seq n is the log's n-th event: a stream logs every public event it sends, in order.
        index = max(after + 1, 0)
        log.followers += 1
        try:
            while True:
                while index < len(log.events):
                    event = log.events[index]
                    index += 1
                    yield event
                    if type(event) is End:
                        return
                await log.changed()
        finally:
            log.followers -= 1

    async def take_over(self, stream_id: str) -> StoredStream | None:
        return None  # one process: its streams end with it

    async def followed(self, stream_id: str) -> bool:
        log = self._logs.get(stream_id)
        return log is not None and log.followers > 0


class MemoryState:
    """The embedded default: everything in this process."""

    def __init__(self, conversations: ConversationSettings, resume: ResumeSettings, max_logs: int) -> None:
        self.conversations = MemoryConversationStore(
            conversations.max_conversations, conversations.idle_ttl_s, conversations.max_messages
        )
        self.logs = MemoryStreamLogs(max_logs, resume.resume_ttl_s)

    @property
    def healthy(self) -> bool:
        return True

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass
