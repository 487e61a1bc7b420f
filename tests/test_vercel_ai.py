"""The Vercel AI SDK endpoint, read by the SDK itself (`ai` from npm) against a live proxy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest

from proxy.mock_upstream import MockServer
from tests.conftest import ProxyFactory, assert_refused, settings_for
from tests.js_clients import run_node
from tests.support import UI_BODIES
from tests.test_mcp import LIST, stdio_settings
from tests.test_structured_output import PERSON


async def chat(url: str, agent: str, *prompts: str) -> list[dict[str, Any]]:
    """What the SDK made of each turn: its chunks, the assistant message, its errors."""
    api = f"{url}/v1/agents/{agent}/vercel-ai"
    turns: list[dict[str, Any]] = (await run_node("vercel_ai_chat.mjs", {"api": api, "prompts": prompts}))[
        "turns"
    ]
    return turns


def chunk_types(turn: dict[str, Any]) -> list[str]:
    return [c["type"] for c in turn["chunks"]]


def texts(message: dict[str, Any]) -> list[str]:
    return [p["text"] for p in message["parts"] if p["type"] == "text"]


async def test_the_sdk_reads_the_text_and_the_finish_part(mock: MockServer, make_proxy: ProxyFactory) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=5"}))
    (turn,) = await chat(proxy.url, "a", "hello")
    assert turn["errors"] == [] and turn["httpError"] is None
    assert chunk_types(turn) == ["start", "text-start"] + ["text-delta"] * 5 + ["text-end", "finish"]
    message = turn["message"]
    assert message["role"] == "assistant"
    assert texts(message) == ["tok0 tok1 tok2 tok3 tok4"]
    meta = message["metadata"]
    assert meta["agent"] == "a" and meta["model"] == "mock:m?chunks=5"
    assert meta["finish_reason"] == "stop" and meta["attempts"] == 1
    assert meta["usage"]["output_tokens"] == 5
    assert 0 < meta["ttft_s"] <= meta["duration_s"]
    assert turn["chunks"][-1]["finishReason"] == "stop"


async def test_the_conversation_continues_with_the_history_the_sdk_sends(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?echo=1"}))
    first, second = await chat(proxy.url, "a", "one", "two")
    assert texts(first["message"]) == ["echo: one (messages: 1)"]
    # user, assistant, user: the SDK's history reached the upstream.
    assert texts(second["message"]) == ["echo: two (messages: 3)"]
    sent = mock.stats.last_request_bodies[-1]["messages"]
    assert [(m["role"], m["content"]) for m in sent] == [
        ("user", "one"),
        ("assistant", "echo: one (messages: 1)"),
        ("user", "two"),
    ]


async def test_a_mid_stream_restart_keeps_the_discarded_text_in_its_own_part(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    settings = settings_for(
        mock, {"a": "m?chunks=4&fault=drop&after=2&fault_times=1&echo=0"}, retry={"backoff_initial_s": 0.01}
    )
    proxy = await make_proxy(settings)
    first, second = await chat(proxy.url, "a", "hi", "again")
    assert first["errors"] == []
    parts = first["message"]["parts"]
    assert [p["type"] for p in parts] == ["text", "data-retry", "text"]
    discarded, retry, final = parts
    assert discarded["text"] == "tok0 tok1"
    assert discarded["providerMetadata"] == {"agent_proxy": {"discarded": True}}
    assert retry["data"]["reason"] == "stream_dropped"
    assert retry["data"]["attempt"] == 1 and retry["data"]["discard"] is True
    assert final["text"] == "tok0 tok1 tok2 tok3"
    assert "providerMetadata" not in final
    assert first["message"]["metadata"]["attempts"] == 2
    # Sent back as history, the discarded text is left out.
    history = mock.stats.last_request_bodies[-1]["messages"]
    assert [m["content"] for m in history if m["role"] == "assistant"] == ["tok0 tok1 tok2 tok3"]
    assert texts(second["message"]) == ["tok0 tok1 tok2 tok3"]


async def test_a_failed_stream_surfaces_as_the_sdk_error(mock: MockServer, make_proxy: ProxyFactory) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=4&fault=http400"}))
    (turn,) = await chat(proxy.url, "a", "hi")
    assert chunk_types(turn) == ["start", "error", "finish"]
    assert len(turn["errors"]) == 1 and "400" in turn["errors"][0]
    meta = turn["message"]["metadata"]
    assert meta["finish_reason"] == "error"
    assert meta["error"] == {"code": "upstream_bad_request", "retryable": False}
    assert turn["chunks"][-1]["finishReason"] == "error"


async def test_tools_the_proxy_ran_show_as_dynamic_tool_parts(
    mock: MockServer, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    (tmp_path / "README.md").write_text("hello\n")
    proxy = await make_proxy(stdio_settings(mock, tmp_path, LIST))
    (turn,) = await chat(proxy.url, "a", "what is here?")
    assert chunk_types(turn)[:3] == ["start", "tool-input-available", "tool-output-available"]
    tool, text = turn["message"]["parts"]
    assert tool["type"] == "dynamic-tool"
    assert tool["toolName"] == "list_files"
    assert tool["state"] == "output-available"
    assert tool["input"] == {"path": "."}
    assert "README.md" in tool["output"]
    assert "README.md" in text["text"]


async def test_structured_output_is_one_data_part_updated_in_place(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    agent = {"model": "person?json_chunk=6", "output_schema": PERSON, "output_name": "person"}
    proxy = await make_proxy(settings_for(mock, {"p": agent}))
    (turn,) = await chat(proxy.url, "p", "make a person")
    assert chunk_types(turn).count("data-output") >= 3
    (part,) = turn["message"]["parts"]
    assert part["type"] == "data-output"
    jsonschema.validate(part["data"], PERSON)
    assert part["data"] == turn["chunks"][-2]["data"]


async def test_heartbeats_are_sse_comments_and_the_protocol_header_is_set(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    settings = settings_for(mock, {"a": "m?chunks=1&ttfc_ms=300"}, server={"heartbeat_interval_s": 0.05})
    proxy = await make_proxy(settings)
    async with session.post(f"{proxy.url}/v1/agents/a/vercel-ai", json=UI_BODIES["vercel-ai"]) as resp:
        assert resp.headers["x-vercel-ai-ui-message-stream"] == "v1"
        assert resp.headers["Content-Type"] == "text/event-stream"
        raw = await resp.read()
    blocks = raw.split(b"\n\n")
    assert blocks[1:3] == [b": keepalive", b": keepalive"]
    assert blocks[-2:] == [b"data: [DONE]", b""]


async def test_history_with_other_provider_metadata_is_kept(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?echo=1"}))
    odd = [{"agent_proxy": 3}, {"agent_proxy": {"discarded": "yes"}}, "x", {"other": {"discarded": True}}]
    history = [
        {"role": "assistant", "parts": [{"type": "text", "text": f"a{i}", "providerMetadata": meta}]}
        for i, meta in enumerate(odd)
    ]
    user = {"role": "user", "parts": [{"type": "text", "text": "hi"}]}
    async with session.post(
        f"{proxy.url}/v1/agents/a/vercel-ai", json={"messages": [*history, user]}
    ) as resp:
        assert resp.status == 200
        await resp.read()
    sent = mock.stats.last_request_bodies[-1]["messages"]
    assert [m["content"] for m in sent] == ["a0", "a1", "a2", "a3", "hi"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "invalid_messages"),
        ({"messages": "hi"}, 400, "invalid_messages"),
        ({"messages": [{"role": "robot", "parts": []}]}, 400, "invalid_messages"),
        ({"messages": [{"role": "user", "parts": [{"type": "file", "url": "x"}]}]}, 400, "invalid_messages"),
        ({"messages": [{"role": "user", "parts": [{"type": "text", "text": 3}]}]}, 400, "invalid_messages"),
        (
            {"messages": [{"role": "assistant", "parts": [{"type": "text", "text": "x"}]}]},
            400,
            "invalid_messages",
        ),
        ({"messages": [{"role": "user", "parts": [{"type": "text", "text": "  "}]}]}, 422, "invalid_prompt"),
    ],
)
async def test_bad_bodies_get_a_4xx_and_start_nothing(
    mock: MockServer,
    make_proxy: ProxyFactory,
    session: aiohttp.ClientSession,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    await assert_refused(session, proxy, mock, "/v1/agents/a/vercel-ai", body, status, code)
    await assert_refused(session, proxy, mock, "/v1/agents/nope/vercel-ai", body, 404, "unknown_agent")


async def test_text_parts_of_a_message_reach_the_upstream_as_parts(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=2"}))
    parts = [{"type": "text", "text": "hello"}, {"type": "text", "text": "world"}]
    body = {"id": "c", "messages": [{"id": "u", "role": "user", "parts": parts}]}
    async with session.post(f"{proxy.url}/v1/agents/a/vercel-ai", json=body) as resp:
        assert resp.status == 200
        await resp.read()
    sent = mock.stats.last_request_bodies[-1]["messages"]
    assert sent[-1]["content"] == parts
