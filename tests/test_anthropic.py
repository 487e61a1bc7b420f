"""Anthropic's Messages API (protocol.md, Messages), driven by the official `anthropic` SDK as Claude
Code and platform teams' own code do: streams, answers, tool round trips, and every error class."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from unittest.mock import ANY

import aiohttp
import anthropic
import orjson
import pytest
from anthropic import AsyncAnthropic

from proxy.app import TELEMETRY
from proxy.mock_upstream import MockBehaviour, MockServer, expected_text
from tests.auth.helpers import ALPHA, BETA, entry, keyed_settings
from tests.conftest import Proxy, ProxyFactory, settings_for
from tests.observability.conftest import sample

HI: list[Any] = [{"role": "user", "content": "hi"}]
BASH: list[Any] = [
    {
        "name": "Bash",
        "description": "Run a shell command",
        "input_schema": {
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
        },
        "cache_control": {"type": "ephemeral"},
    }
]
CALLS_BASH = 'm?tool=Bash&tool_args={"command":"echo hi"}'


@asynccontextmanager
async def client(proxy: Proxy, api_key: str = "x") -> AsyncIterator[AsyncAnthropic]:
    """The SDK pointed at the proxy; on a clean exit, no stream may still be running."""
    async with AsyncAnthropic(base_url=proxy.url, api_key=api_key, max_retries=0) as sdk:
        yield sdk
    await proxy.engine.wait_idle(2)


def upstream_body(mock: MockServer) -> dict[str, Any]:
    return mock.stats.last_request_bodies[-1]


async def raw_messages(
    session: aiohttp.ClientSession, proxy: Proxy, body: dict[str, Any], **kwargs: Any
) -> tuple[int, dict[str, str], bytes]:
    async with session.post(f"{proxy.url}/v1/messages?beta=true", json=body, **kwargs) as resp:
        return resp.status, dict(resp.headers), await resp.read()


def event_names(raw: bytes) -> list[str]:
    return [
        block.split(b"\n")[0][7:].decode() for block in raw.split(b"\n\n") if block.startswith(b"event: ")
    ]


# --- answers ------------------------------------------------------------------------------------


async def test_a_stream_sends_every_event_in_order_with_usage_at_start_and_end(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=4"}))
    async with client(proxy) as sdk, sdk.messages.stream(model="a", max_tokens=100, messages=HI) as stream:
        types = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert types[:2] == ["message_start", "content_block_start"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert final.content[0].type == "text"
    assert final.content[0].text == expected_text(MockBehaviour(chunks=4))
    assert final.stop_reason == "end_turn"
    assert final.model == "a"
    assert final.id.startswith("msg_")
    assert (final.usage.input_tokens, final.usage.output_tokens) == (1, 4)


async def test_create_answers_one_message(mock: MockServer, make_proxy: ProxyFactory) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=3"}))
    async with client(proxy) as sdk:
        answer = await sdk.messages.create(model="a", max_tokens=100, messages=HI)
    assert answer.type == "message" and answer.role == "assistant"
    assert [block.type for block in answer.content] == ["text"]
    assert answer.content[0].type == "text" and answer.content[0].text == "tok0 tok1 tok2"
    assert answer.stop_reason == "end_turn" and answer.stop_sequence is None
    assert answer.usage.output_tokens == 3


async def test_claude_model_names_reach_an_agent_by_its_aliases_and_unknown_ones_are_404(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    agents = {"big": {"model": "big?chunks=1", "aliases": ["claude-sonnet-*", "claude-opus-*"]}}
    agents["small"] = {"model": "small?chunks=2", "aliases": ["claude-haiku-*"]}
    proxy = await make_proxy(settings_for(mock, agents))
    async with client(proxy) as sdk:
        sonnet = await sdk.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=HI)
        haiku = await sdk.messages.create(model="claude-haiku-4-5-20251001", max_tokens=10, messages=HI)
        with pytest.raises(anthropic.NotFoundError) as caught:
            await sdk.messages.create(model="gpt-4o", max_tokens=10, messages=HI)
    assert sonnet.model == "claude-sonnet-4-5"  # what the client asked for
    assert upstream_body(mock)["model"] == "small?chunks=2"
    assert haiku.content[0].type == "text" and haiku.content[0].text == "tok0 tok1"
    assert caught.value.type == "not_found_error"


async def test_max_tokens_is_forwarded_and_a_length_finish_is_stop_reason_max_tokens(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=2&finish=length"}))
    async with client(proxy) as sdk:
        answer = await sdk.messages.create(model="a", max_tokens=7, messages=HI, stop_sequences=["END"])
        async with sdk.messages.stream(model="a", max_tokens=7, messages=HI) as stream:
            streamed = await stream.get_final_message()
    assert answer.stop_reason == streamed.stop_reason == "max_tokens"
    body = upstream_body(mock)
    assert body.get("max_completion_tokens", body.get("max_tokens")) == 7
    assert mock.stats.last_request_bodies[-2]["stop"] == ["END"]


async def test_the_clients_system_prompt_and_mid_conversation_system_entries_join_the_agents_instructions(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    agent = {"model": "m?chunks=1", "instructions": "Agent rules."}
    proxy = await make_proxy(settings_for(mock, {"a": agent}))
    system: list[Any] = [
        {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197.123;"},
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
    ]
    messages: list[Any] = [*HI, {"role": "system", "content": "Agents: Explore, Plan."}]
    async with client(proxy) as sdk:
        await sdk.messages.create(model="a", max_tokens=10, system=system, messages=messages)
    sent = upstream_body(mock)["messages"]
    instructions = " ".join(m["content"] for m in sent if m["role"] == "system")
    assert "Agent rules." in instructions and "You are Claude Code." in instructions
    assert "Agents: Explore, Plan." in instructions
    assert "billing-header" not in instructions  # changes per request: it would defeat prompt caching
    assert sent[-1] == {"role": "user", "content": "hi"}


async def test_images_reach_the_upstream_and_thinking_blocks_of_the_history_are_dropped(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=1"}))
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    messages: list[Any] = [
        {"role": "user", "content": "think"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "secret reasoning", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "thought"},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                {"type": "text", "text": "what is it?"},
            ],
        },
    ]
    async with client(proxy) as sdk:
        await sdk.messages.create(
            model="a",
            max_tokens=2000,
            messages=messages,
            thinking={"type": "enabled", "budget_tokens": 1024},
        )
    sent = upstream_body(mock)["messages"]
    assert sent[1] == {"role": "assistant", "content": "thought"}
    parts = sent[-1]["content"]
    assert [part["type"] for part in parts] == ["image_url", "image_url", "text"]
    assert parts[0]["image_url"]["url"] == f"data:image/png;base64,{png}"
    assert parts[1]["image_url"]["url"] == "https://example.com/cat.jpg"


async def test_a_client_tool_call_streams_as_tool_use_and_its_result_comes_back_as_the_answer(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": CALLS_BASH}))
    async with client(proxy) as sdk:
        async with sdk.messages.stream(model="a", max_tokens=100, messages=HI, tools=BASH) as stream:
            deltas = [event.delta.type async for event in stream if event.type == "content_block_delta"]
            called = await stream.get_final_message()
        assert called.stop_reason == "tool_use"
        (call,) = [block for block in called.content if block.type == "tool_use"]
        assert (call.name, call.input) == ("Bash", {"command": "echo hi"})
        assert "input_json_delta" in deltas
        result = {
            "type": "tool_result",
            "tool_use_id": call.id,
            "content": "hi\n",
            "cache_control": {"type": "ephemeral"},
        }
        messages: list[Any] = [
            *HI,
            {
                "role": "assistant",
                "content": [block.model_dump(exclude_none=True) for block in called.content],
            },
            {"role": "user", "content": [result]},
        ]
        answer = await sdk.messages.create(model="a", max_tokens=100, messages=messages, tools=BASH)
    assert answer.stop_reason == "end_turn"
    assert answer.content[0].type == "text" and answer.content[0].text.endswith("(tool result: hi\n)")
    sent = upstream_body(mock)["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]


async def test_create_answers_a_tool_call_as_a_tool_use_block(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": CALLS_BASH}))
    async with client(proxy) as sdk:
        answer = await sdk.messages.create(
            model="a", max_tokens=100, messages=HI, tools=BASH, tool_choice={"type": "tool", "name": "Bash"}
        )
    assert answer.stop_reason == "tool_use"
    assert [(b.type, getattr(b, "input", None)) for b in answer.content] == [
        ("tool_use", {"command": "echo hi"})
    ]
    assert upstream_body(mock)["tool_choice"] == "required"  # the one tool there is


async def test_a_json_schema_output_format_answers_json_text(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    async with client(proxy) as sdk:
        answer = await sdk.messages.create(
            model="a",
            max_tokens=100,
            messages=HI,
            extra_body={"output_config": {"format": {"type": "json_schema", "schema": schema}}},
        )
    assert answer.content[0].type == "text"
    assert '"title"' in answer.content[0].text


async def test_ping_is_the_heartbeat_also_before_the_first_token(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    settings = settings_for(mock, {"a": "m?chunks=2&ttfc_ms=400"}, server={"heartbeat_interval_s": 0.1})
    proxy = await make_proxy(settings)
    status, headers, raw = await raw_messages(
        session, proxy, {"model": "a", "max_tokens": 5, "messages": HI, "stream": True}
    )
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    names = event_names(raw)
    assert names[0] == "message_start"
    assert names[1 : names.index("content_block_start")].count("ping") >= 2, names
    assert b'event: ping\ndata: {"type": "ping"}\n\n' in raw


async def test_count_tokens_estimates_a_quarter_of_the_characters(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": {"model": "m", "aliases": ["claude-*"]}}))
    long = "word " * 400
    async with client(proxy) as sdk:
        short = await sdk.messages.count_tokens(model="claude-sonnet-4-5", messages=HI)
        counted = await sdk.messages.count_tokens(
            model="a", messages=[{"role": "user", "content": long}], tools=BASH
        )
        with pytest.raises(anthropic.NotFoundError):
            await sdk.messages.count_tokens(model="nope", messages=HI)
    assert short.input_tokens >= 1
    assert len(long) // 4 < counted.input_tokens < len(long) // 4 + 200
    assert mock.stats.total.requests == 0


async def test_head_of_the_root_answers_200_as_claude_code_checks_its_base_url(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    async with session.head(f"{proxy.url}/", allow_redirects=False) as resp:
        assert resp.status == 200


async def test_streams_are_counted_with_transport_anthropic(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=2"}))
    async with client(proxy) as sdk:
        await sdk.messages.create(model="a", max_tokens=10, messages=HI)
    metrics = proxy.app[TELEMETRY].metrics
    assert (
        sample(metrics, "agent_proxy_requests_total", agent="a", transport="anthropic", outcome="stop") == 1
    )


# --- errors -------------------------------------------------------------------------------------


def user(*blocks: Any) -> list[Any]:
    return [{"role": "user", "content": list(blocks)}]


NOT_BASE64 = {"type": "base64", "media_type": "image/png", "data": "%%"}
BAD_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("no max_tokens", {"max_tokens": None}, "max_tokens"),
    ("top_k", {"top_k": 5}, "top_k"),
    ("a server tool", {"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0].type"),
    ("a document block", {"messages": user({"type": "document"})}, "messages[0].content[0].type"),
    ("a prefilled answer", {"messages": [*HI, {"role": "assistant", "content": "Sure"}]}, "messages"),
    ("a stray tool result", {"messages": user({"type": "tool_result", "tool_use_id": "t"})}, "tool_use_id"),
    ("a temperature over 1", {"temperature": 1.5}, "temperature"),
    ("an image not in base64", {"messages": user({"type": "image", "source": NOT_BASE64})}, "source.data"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "body", "named"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
async def test_a_body_the_proxy_cannot_take_is_a_400_invalid_request_error_naming_the_field(
    mock: MockServer,
    make_proxy: ProxyFactory,
    session: aiohttp.ClientSession,
    name: str,
    body: dict[str, Any],
    named: str,
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    sent = {
        key: value for key, value in {"model": "a", "max_tokens": 5, "messages": HI, **body}.items() if value
    }
    status, _, raw = await raw_messages(session, proxy, sent)
    assert status == 400, raw
    error = orjson.loads(raw)
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert named in error["error"]["message"]
    assert mock.stats.total.requests == 0


async def test_the_sdk_raises_its_own_class_for_each_refusal(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    keys = [
        entry("alpha", ALPHA, agents=["a"], limits={"requests_per_minute": 1}),
        entry("beta", BETA, agents=["b"]),
    ]
    proxy = await make_proxy(keyed_settings(mock, {"a": "m?chunks=1", "b": "m?chunks=1"}, keys))
    async with client(proxy, "wrong") as sdk:
        with pytest.raises(anthropic.AuthenticationError) as unauthorized:
            await sdk.messages.create(model="a", max_tokens=5, messages=HI)
    async with client(proxy, BETA) as sdk:
        with pytest.raises(anthropic.PermissionDeniedError) as forbidden:
            await sdk.messages.create(model="a", max_tokens=5, messages=HI)
    async with client(proxy, ALPHA) as sdk:
        await sdk.messages.create(model="a", max_tokens=5, messages=HI)
        with pytest.raises(anthropic.RateLimitError) as limited:
            await sdk.messages.create(model="a", max_tokens=5, messages=HI, stream=True)
    assert unauthorized.value.type == "authentication_error"
    assert forbidden.value.type == "permission_error"
    assert limited.value.type == "rate_limit_error"
    assert int(limited.value.response.headers["retry-after"]) > 0


async def test_x_api_key_and_bearer_together_are_one_credential(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(keyed_settings(mock, {"a": "m?chunks=1"}, [entry("alpha", ALPHA)]))
    headers = {"x-api-key": ALPHA, "Authorization": f"Bearer {ALPHA}", "anthropic-version": "2023-06-01"}
    status, _, _ = await raw_messages(
        session, proxy, {"model": "a", "max_tokens": 5, "messages": HI}, headers=headers
    )
    assert status == 200


async def test_a_body_over_the_limit_is_413_request_too_large(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}, server={"max_body_bytes": 16384}))
    async with client(proxy) as sdk:
        with pytest.raises(anthropic.APIStatusError) as caught:
            await sdk.messages.create(
                model="a", max_tokens=5, messages=[{"role": "user", "content": "x" * 20_000}]
            )
    assert caught.value.status_code == 413
    assert caught.value.body == {"type": "error", "error": {"type": "request_too_large", "message": ANY}}


async def test_a_full_proxy_is_529_overloaded(mock: MockServer, make_proxy: ProxyFactory) -> None:
    settings = settings_for(mock, {"a": "m?chunks=1&ttfc_ms=60000"}, server={"max_concurrent_streams": 1})
    proxy = await make_proxy(settings)
    async with AsyncAnthropic(base_url=proxy.url, api_key="x", max_retries=0) as sdk:
        running = asyncio.create_task(sdk.messages.create(model="a", max_tokens=5, messages=HI))
        await mock.stats.wait_for(lambda s: s.total.requests == 1, timeout=5)
        with pytest.raises(anthropic.OverloadedError) as caught:
            await sdk.messages.create(model="a", max_tokens=5, messages=HI)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    await proxy.engine.wait_idle(2)
    assert caught.value.type == "overloaded_error"
    assert caught.value.response.headers["retry-after"] == "1"


UPSTREAM_FAILURES: list[tuple[str, type[anthropic.APIStatusError], str]] = [
    ("fault=http503", anthropic.OverloadedError, "overloaded_error"),
    ("fault=http429", anthropic.OverloadedError, "overloaded_error"),
    ("fault=http400", anthropic.InternalServerError, "api_error"),
    ("fault=context_length", anthropic.BadRequestError, "invalid_request_error"),
]


@pytest.mark.parametrize(
    ("fault", "raised", "kind"), UPSTREAM_FAILURES, ids=[c[0] for c in UPSTREAM_FAILURES]
)
async def test_an_upstream_that_keeps_failing_is_the_anthropic_status_its_clients_retry_or_not(
    mock: MockServer, make_proxy: ProxyFactory, fault: str, raised: type[anthropic.APIStatusError], kind: str
) -> None:
    settings = settings_for(mock, {"a": f"m?{fault}"}, retry={"max_attempts": 1})
    proxy = await make_proxy(settings)
    async with client(proxy) as sdk:
        with pytest.raises(raised) as caught:
            await sdk.messages.create(model="a", max_tokens=5, messages=HI)
        with pytest.raises(anthropic.APIStatusError) as in_stream:
            async with sdk.messages.stream(model="a", max_tokens=5, messages=HI) as stream:
                await stream.get_final_message()
    assert caught.value.type == in_stream.value.type == kind


async def test_a_failure_after_the_first_token_is_an_error_event_never_message_stop(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=5&fault=drop&after=2"}))
    body = {"model": "a", "max_tokens": 5, "messages": HI, "stream": True}
    status, _, raw = await raw_messages(session, proxy, body)
    names = event_names(raw)
    assert status == 200 and names[-1] == "error" and "message_stop" not in names, names
    assert names.count("content_block_delta") == 2
    async with client(proxy) as sdk:
        with pytest.raises(anthropic.APIStatusError) as caught:
            async with sdk.messages.stream(model="a", max_tokens=5, messages=HI) as stream:
                await stream.get_final_message()
    assert caught.value.type == "api_error"
