"""Conversation history: a bounded in-memory store behind a small interface.

A conversation is written once per successful stream, with the run's whole message list, so the
final assistant message is stored exactly once however the client consumed the stream. Failed or
cancelled streams leave the conversation as it was.

A conversation belongs to the key that created it (its `owner`, the key's name): a read by any other
owner finds nothing, exactly as for an unknown id, so that existence is not revealed.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

from pydantic_ai.messages import ModelMessage

from proxy.observability.observer import ANONYMOUS_KEY


class ConversationStore(Protocol):
    def get(self, conversation_id: str, owner: str = ANONYMOUS_KEY) -> list[ModelMessage] | None:
        """The history, or None if the conversation is unknown, expired or owned by another key."""

    def put(self, conversation_id: str, messages: Sequence[ModelMessage], owner: str = ANONYMOUS_KEY) -> None:
        """Store the conversation as `owner`'s (a conversation of another owner is never overwritten)."""

    def __len__(self) -> int: ...


class OwnedConversations:
    """A store as one caller sees it: reads and writes default to the caller as owner. What the
    engine hands a stream, which stores its answer without knowing who asked."""

    def __init__(self, store: ConversationStore, owner: str) -> None:
        self._store = store
        self._owner = owner

    def get(self, conversation_id: str, owner: str | None = None) -> list[ModelMessage] | None:
        return self._store.get(conversation_id, owner or self._owner)

    def put(self, conversation_id: str, messages: Sequence[ModelMessage], owner: str | None = None) -> None:
        self._store.put(conversation_id, messages, owner or self._owner)

    def __len__(self) -> int:
        return len(self._store)


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
        self._items: OrderedDict[str, tuple[float, str, list[ModelMessage]]] = OrderedDict()

    def _expire(self, now: float) -> None:
        while self._items:
            oldest, (touched, _, _) = next(iter(self._items.items()))
            if now - touched < self._ttl:
                return
            del self._items[oldest]

    def get(self, conversation_id: str, owner: str = ANONYMOUS_KEY) -> list[ModelMessage] | None:
        now = self._clock()
        self._expire(now)
        item = self._items.get(conversation_id)
        if item is None or item[1] != owner:
            return None
        self._items[conversation_id] = (now, owner, item[2])
        self._items.move_to_end(conversation_id)
        return list(item[2])

    def put(self, conversation_id: str, messages: Sequence[ModelMessage], owner: str = ANONYMOUS_KEY) -> None:
        now = self._clock()
        self._expire(now)
        item = self._items.get(conversation_id)
        if item is not None and item[1] != owner:
            return
        self._items[conversation_id] = (now, owner, list(messages))
        self._items.move_to_end(conversation_id)
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        self._expire(self._clock())
        return len(self._items)
