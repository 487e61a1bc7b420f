"""Conversation history in memory (the embedded default); Redis keeps it behind the same
interface (`proxy.engine.shared.ConversationStore`, `proxy/state/redis.py`).

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

from pydantic_ai.messages import ModelMessage, ModelRequest

from proxy.observability.observer import ANONYMOUS_KEY


def new_conversation_id() -> str:
    return f"conv_{uuid.uuid4().hex}"


def trim_history(messages: list[ModelMessage], max_messages: int) -> list[ModelMessage]:
    """The newest `max_messages` at most, starting at a request (a turn is never cut in half)."""
    if len(messages) <= max_messages:
        return messages
    kept = messages[-max_messages:]
    for i, message in enumerate(kept):
        if isinstance(message, ModelRequest):
            return kept[i:]
    return kept


class MemoryConversationStore:
    """LRU over at most `max_conversations`; entries idle longer than `idle_ttl_s` expire."""

    def __init__(
        self,
        max_conversations: int,
        idle_ttl_s: float,
        max_messages: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_messages = max_messages
        self._max = max_conversations
        self._ttl = idle_ttl_s
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, str | None, list[ModelMessage]]] = OrderedDict()

    def _expire(self, now: float) -> None:
        while self._items:
            oldest, (touched, _, _) = next(iter(self._items.items()))
            if now - touched < self._ttl:
                return
            del self._items[oldest]

    async def get(self, conversation_id: str, owner: str | None = ANONYMOUS_KEY) -> list[ModelMessage] | None:
        now = self._clock()
        self._expire(now)
        item = self._items.get(conversation_id)
        if item is None or item[1] != owner:
            return None
        self._items[conversation_id] = (now, owner, item[2])
        self._items.move_to_end(conversation_id)
        return list(item[2])

    async def put(
        self, conversation_id: str, messages: Sequence[ModelMessage], owner: str | None = ANONYMOUS_KEY
    ) -> None:
        now = self._clock()
        self._expire(now)
        item = self._items.get(conversation_id)
        if item is not None and item[1] != owner:
            return  # another owner's conversation is never overwritten
        self._items[conversation_id] = (now, owner, trim_history(list(messages), self._max_messages))
        self._items.move_to_end(conversation_id)
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    async def delete(self, conversation_id: str, owner: str | None = ANONYMOUS_KEY) -> bool:
        item = self._items.get(conversation_id)
        if item is None or item[1] != owner:
            return False
        del self._items[conversation_id]
        return True

    def __len__(self) -> int:
        self._expire(self._clock())
        return len(self._items)
