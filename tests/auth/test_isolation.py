"""Isolation between keys (DESIGN 9): conversations belong to their key, agents to their allowlist."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI

from proxy.mock_upstream import MockServer
from tests.auth.helpers import ALPHA, BETA, bearer, entry, keyed_settings
from tests.conftest import Proxy, ProxyFactory
from tests.support import read_sse

HI: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def proxy(mock: MockServer, make_proxy: ProxyFactory) -> Proxy:
    agents = {"a": "m?echo=1", "b": "n?chunks=2", "c": "o?chunks=2"}
    return await make_proxy(
        keyed_settings(mock, agents, [entry("alpha", ALPHA), entry("beta", BETA, agents=["b"])])
    )


async def stream(
    session: aiohttp.ClientSession, proxy: Proxy, key: str, agent: str, **body: Any
) -> tuple[int, Any]:
    async with session.post(
        f"{proxy.url}/v1/agents/{agent}/stream", json={"prompt": "hi", **body}, headers=bearer(key)
    ) as resp:
        result = await read_sse(resp)
    return result.status, result.body if result.body is not None else result.end


async def test_a_conversation_is_unknown_to_any_other_key(
    proxy: Proxy, session: aiohttp.ClientSession
) -> None:
    status, end = await stream(session, proxy, ALPHA, "a")
    assert status == 200
    conversation_id = end["conversation_id"]
    status, body = await stream(session, proxy, BETA, "b", conversation_id=conversation_id)
    assert status == 404
    assert body["error"]["code"] == "unknown_conversation"
    # The same answer as for an id that never existed: existence is not revealed.
    _, unknown = await stream(session, proxy, BETA, "b", conversation_id="conv_nope")
    assert body["error"]["message"].replace(conversation_id, "conv_nope") == unknown["error"]["message"]
    status, end = await stream(session, proxy, ALPHA, "a", conversation_id=conversation_id)
    assert status == 200
    assert end["conversation_id"] == conversation_id
    assert "(messages: 3)" in end["text"]  # the first turn was continued


async def test_an_agent_outside_the_allowlist_is_forbidden_on_every_wire(
    proxy: Proxy, session: aiohttp.ClientSession
) -> None:
    status, body = await stream(session, proxy, BETA, "a")
    assert (status, body["error"]["code"]) == (403, "forbidden_agent")
    async with session.post(
        f"{proxy.url}/v1/agents/a/run", json={"prompt": "x"}, headers=bearer(BETA)
    ) as resp:
        assert resp.status == 403
    async with session.ws_connect(f"{proxy.url}/v1/ws", headers=bearer(BETA)) as ws:
        await ws.send_json({"type": "prompt", "request_id": "r1", "agent": "a", "prompt": "hi"})
        frame = await ws.receive_json(timeout=5)
        assert (frame["type"], frame["code"], frame["request_id"]) == ("error", "forbidden_agent", "r1")
    async with AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key=BETA, max_retries=0) as client:
        with pytest.raises(openai.PermissionDeniedError) as caught:
            await client.chat.completions.create(model="a", messages=HI)
        assert caught.value.code == "forbidden_agent"
        answer = await client.chat.completions.create(model="b", messages=HI)
        assert answer.choices[0].message.content == "tok0 tok1"
    assert not proxy.engine.active


async def test_models_and_agents_list_only_the_keys_agents(
    proxy: Proxy, session: aiohttp.ClientSession
) -> None:
    async with AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key=BETA, max_retries=0) as client:
        assert [m.id async for m in client.models.list()] == ["b"]
    async with AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key=ALPHA, max_retries=0) as client:
        assert [m.id async for m in client.models.list()] == ["a", "b", "c"]
    async with session.get(f"{proxy.url}/v1/agents", headers=bearer(BETA)) as resp:
        assert [a["name"] for a in (await resp.json())["agents"]] == ["b"]
