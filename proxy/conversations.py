"""Conversation history: a bounded in-memory store behind a small interface.

A conversation is written once per successful stream, with the run's whole message list, so the
final assistant message is stored exactly once however the client consumed the stream. Failed or
cancelled streams leave the conversation as it was.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

from pydantic_ai.messages import ModelMessage


class ConversationStore(Protocol):
    def get(self, conversation_id: str) -> list[ModelMessage] | None:
        """The history, or None if the conversation is unknown or expired."""

    def put(self, conversation_id: str, messages: Sequence[ModelMessage]) -> None: ...

    def __len__(self) -> int: ...


def new_conversation_id() -> str:
    return f"conv_{uuid.uuid4().hex}"


class MemoryConversationStore:
    """LRU over at most `max_conversations`; entries idle longer than `idle_ttl_s` expire."""

    def __init__(
        self, max_conversations: int, idle_ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max = max_conversations
        self._ttl = idle_ttl_s
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, list[ModelMessage]]] = OrderedDict()

    def _expire(self, now: float) -> None:
        while self._items:
            oldest, (touched, _) = next(iter(self._items.items()))
            if now - touched < self._ttl:
                return
            del self._items[oldest]

    def get(self, conversation_id: str) -> list[ModelMessage] | None:
        now = self._clock()
        self._expire(now)
        item = self._items.get(conversation_id)
        if item is None:
            return None
        self._items[conversation_id] = (now, item[1])
        self._items.move_to_end(conversation_id)
        return list(item[1])

    def put(self, conversation_id: str, messages: Sequence[ModelMessage]) -> None:
        now = self._clock()
        self._expire(now)
        self._items[conversation_id] = (now, list(messages))
        self._items.move_to_end(conversation_id)
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        self._expire(self._clock())
        return len(self._items)
