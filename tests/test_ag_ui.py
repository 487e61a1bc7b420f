"""The AG-UI endpoint, run by AG-UI's own client (`@ag-ui/client`'s `HttpAgent`) against a live proxy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest

from proxy.mock_upstream import MockServer
from tests.conftest import ProxyFactory, assert_refused, settings_for
from tests.js_clients import run_node
from tests.test_mcp import LIST, stdio_settings
from tests.test_structured_output import PERSON


async def run_agent(url: str, agent: str, *prompts: str) -> list[dict[str, Any]]:
    """What the client made of each run: its events, the messages, the result, the errors."""
    runs: list[dict[str, Any]] = (
        await run_node("ag_ui_run.mjs", {"url": f"{url}/v1/agents/{agent}/ag-ui", "prompts": prompts})
    )["runs"]
    return runs


def event_types(run: dict[str, Any]) -> list[str]:
    return [e["type"] for e in run["events"]]


def assistant_texts(run: dict[str, Any]) -> list[str]:
    return [m["content"] for m in run["messages"] if m["role"] == "assistant" and m.get("content")]


async def test_the_client_gets_the_text_and_the_run_result(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=3"}))
    (run,) = await run_agent(proxy.url, "a", "hello")
    assert run["error"] is None
    assert event_types(run) == [
        "RUN_STARTED",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "RUN_FINISHED",
    ]
    started = run["events"][0]
    assert started["threadId"] == "thread-1" and started["runId"] == "run-0"
    assert started["metadata"]["model"] == "mock:m?chunks=3"
    assert assistant_texts(run) == ["tok0 tok1 tok2"]
    result = run["result"]
    assert result["finish_reason"] == "stop" and result["text"] == "tok0 tok1 tok2"
    assert result["attempts"] == 1 and result["usage"]["output_tokens"] == 3
    assert 0 < result["ttft_s"] <= result["duration_s"]
    assert run["events"][-1]["usage"][0]["outputTokens"] == 3


async def test_the_conversation_continues_with_the_clients_messages(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?echo=1"}))
    _, second = await run_agent(proxy.url, "a", "one", "two")
    assert assistant_texts(second) == ["echo: one (messages: 1)", "echo: two (messages: 3)"]


async def test_a_mid_stream_restart_closes_the_discarded_message_and_sends_a_custom_event(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    settings = settings_for(
        mock, {"a": "m?chunks=4&fault=drop&after=2&fault_times=1"}, retry={"backoff_initial_s": 0.01}
    )
    proxy = await make_proxy(settings)
    first, _ = await run_agent(proxy.url, "a", "hi", "again")
    assert first["error"] is None
    types = event_types(first)
    retry_at = types.index("CUSTOM")
    assert types[retry_at - 1] == "TEXT_MESSAGE_END"
    retry = first["events"][retry_at]
    assert retry["name"] == "retry"
    assert retry["value"]["reason"] == "stream_dropped" and retry["value"]["discard"] is True
    discarded, final = [m for m in first["messages"] if m["role"] == "assistant"]
    assert discarded["content"] == "tok0 tok1"
    assert discarded["metadata"] == {"agent_proxy": {"discarded": True}}
    assert final["content"] == "tok0 tok1 tok2 tok3"
    assert first["result"]["attempts"] == 2
    # Sent back as history, the discarded message is left out.
    history = mock.stats.last_request_bodies[-1]["messages"]
    assert [m["content"] for m in history if m["role"] == "assistant"] == ["tok0 tok1 tok2 tok3"]


async def test_a_failed_stream_is_a_run_error_the_client_reports(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(
        settings_for(mock, {"a": "m?chunks=4&fault=drop&after=2"}, retry={"max_attempts": 1})
    )
    (run,) = await run_agent(proxy.url, "a", "hi")
    assert event_types(run)[-2:] == ["TEXT_MESSAGE_END", "RUN_ERROR"]
    error = run["events"][-1]
    assert error["code"] == "upstream_dropped"
    assert error["metadata"]["finish_reason"] == "error" and error["metadata"]["attempts"] == 1
    assert run["runError"] == {"code": "upstream_dropped", "message": error["message"]}
    assert run["result"] is None


async def test_tools_the_proxy_ran_are_tool_call_events(
    mock: MockServer, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    (tmp_path / "README.md").write_text("hello\n")
    proxy = await make_proxy(stdio_settings(mock, tmp_path, LIST))
    (run,) = await run_agent(proxy.url, "a", "what is here?")
    assert run["error"] is None
    assert event_types(run)[:5] == [
        "RUN_STARTED",
        "TOOL_CALL_START",
        "TOOL_CALL_ARGS",
        "TOOL_CALL_END",
        "TOOL_CALL_RESULT",
    ]
    calls = [c for m in run["messages"] if m["role"] == "assistant" for c in m.get("toolCalls", [])]
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        ("list_files", '{"path":"."}')
    ]
    (tool,) = [m for m in run["messages"] if m["role"] == "tool"]
    assert "README.md" in tool["content"]
    assert "README.md" in assistant_texts(run)[-1]


async def test_structured_output_comes_as_custom_snapshots_and_the_result(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    agent = {"model": "person?json_chunk=6", "output_schema": PERSON, "output_name": "person"}
    proxy = await make_proxy(settings_for(mock, {"p": agent}))
    (run,) = await run_agent(proxy.url, "p", "make a person")
    outputs = [e["value"] for e in run["events"] if e["type"] == "CUSTOM" and e["name"] == "output"]
    assert len(outputs) >= 3
    assert [o["partial"] for o in outputs] == [True] * (len(outputs) - 1) + [False]
    jsonschema.validate(outputs[-1]["data"], PERSON)
    assert run["result"]["output"] == outputs[-1]["data"]


async def test_history_with_other_metadata_is_kept(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?echo=1"}))
    odd = [{"agent_proxy": 3}, {"agent_proxy": {"discarded": "yes"}}, {"other": {"discarded": True}}]
    history = [
        {"id": f"a{i}", "role": "assistant", "content": f"a{i}", "metadata": meta}
        for i, meta in enumerate(odd)
    ]
    messages = [*history, {"id": "u", "role": "user", "content": "hi"}]
    body = {"threadId": "t", "runId": "r", "messages": messages}
    async with session.post(f"{proxy.url}/v1/agents/a/ag-ui", json=body) as resp:
        assert resp.status == 200
        await resp.read()
    sent = mock.stats.last_request_bodies[-1]["messages"]
    assert [m["content"] for m in sent] == ["a0", "a1", "a2", "hi"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "invalid_body"),
        (
            {"threadId": "t", "runId": "r", "messages": [{"id": "1", "role": "robot", "content": "x"}]},
            400,
            "invalid_body",
        ),
        ({"threadId": "t", "runId": "r", "messages": []}, 400, "invalid_messages"),
        (
            {"threadId": "t", "runId": "r", "messages": [{"id": "1", "role": "assistant", "content": "x"}]},
            400,
            "invalid_messages",
        ),
        (
            {
                "threadId": "t",
                "runId": "r",
                "messages": [
                    {
                        "id": "1",
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "url", "value": "http://x"}}],
                    }
                ],
            },
            400,
            "invalid_body",
        ),
        (
            {"threadId": "t", "runId": "r", "messages": [{"id": "1", "role": "user", "content": " "}]},
            422,
            "invalid_prompt",
        ),
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
    await assert_refused(session, proxy, mock, "/v1/agents/a/ag-ui", body, status, code)
    await assert_refused(session, proxy, mock, "/v1/agents/nope/ag-ui", body, 404, "unknown_agent")
