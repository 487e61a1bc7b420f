"""Conversations: continuing with `conversation_id` sends the earlier turns upstream; stored once."""

from __future__ import annotations

import aiohttp
import pytest
from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart

from proxy.conversations import MemoryConversationStore
from proxy.mock_upstream import MockServer
from tests.conftest import ProxyFactory, settings_for
from tests.support import post_stream

# Both attempt paths: the direct model stream and the agent loop.
pytestmark = pytest.mark.usefixtures("attempt_path")


async def test_second_prompt_continues_the_conversation(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "chat?echo=1"}))
    first = await post_stream(session, proxy.url, "a", "my name is Ada")
    conversation_id = first.end["conversation_id"]
    assert conversation_id
    second = await post_stream(session, proxy.url, "a", "what is my name?", conversation_id=conversation_id)
    assert second.end["conversation_id"] == conversation_id
    sent = mock.stats.last_request_bodies[-1]["messages"]
    assert [(m["role"], m["content"]) for m in sent] == [
        ("user", "my name is Ada"),
        ("assistant", first.end["text"]),
        ("user", "what is my name?"),
    ]
    history = await proxy.engine.store.get(conversation_id)
    assert history is not None
    responses = [m for m in history if isinstance(m, ModelResponse)]
    # Each assistant message exactly once, even though the client only ever saw deltas.
    assert [r.parts[0].content for r in responses if isinstance(r.parts[0], TextPart)] == [
        first.end["text"],
        second.end["text"],
    ]
    prompts = [
        p.content
        for m in history
        if isinstance(m, ModelRequest)
        for p in m.parts
        if isinstance(p, UserPromptPart)
    ]
    assert prompts == ["my name is Ada", "what is my name?"]


async def test_unknown_conversation_is_a_404_and_creates_nothing(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    result = await post_stream(session, proxy.url, "a", "hi", conversation_id="conv_nope")
    assert result.status == 404
    assert result.body["error"]["code"] == "unknown_conversation"
    assert len(proxy.conversations) == 0
    assert mock.stats.total.requests == 0


async def test_failed_first_turn_stores_nothing(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?fault=http400"}))
    result = await post_stream(session, proxy.url, "a", "hi")
    assert result.end["finish_reason"] == "error"
    assert result.end["conversation_id"] is None
    assert len(proxy.conversations) == 0


async def test_store_is_bounded_by_count_and_idle_time() -> None:
    now = [0.0]
    store = MemoryConversationStore(max_conversations=2, idle_ttl_s=10, clock=lambda: now[0])
    await store.put("a", [])
    await store.put("b", [])
    assert await store.get("a") == []  # touching "a" makes "b" the least recently used
    await store.put("c", [])
    assert await store.get("b") is None
    assert len(store) == 2
    now[0] = 5
    assert await store.get("c") == []
    now[0] = 12
    assert await store.get("a") is None  # idle since t=0
    assert await store.get("c") == []  # touched at t=5
    assert len(store) == 1
