"""OpenAI-compatible endpoint (protocol.md 3.4), driven by the official `openai` SDK as platform teams do."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from openai import AsyncOpenAI

from proxy.mock_upstream import MockBehaviour, MockServer, expected_text
from tests.conftest import Proxy, ProxyFactory, settings_for

HI: list[Any] = [{"role": "user", "content": "hi"}]


@asynccontextmanager
async def openai_client(proxy: Proxy) -> AsyncIterator[AsyncOpenAI]:
    """The SDK pointed at the proxy; on a clean exit, no stream may still be running."""
    async with AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0) as client:
        yield client
    await proxy.engine.wait_idle(2)


async def stream_chunks(client: AsyncOpenAI, model: str = "a", **kwargs: Any) -> list[Any]:
    kwargs.setdefault("messages", HI)
    stream = await client.chat.completions.create(model=model, stream=True, **kwargs)
    return [chunk async for chunk in stream]


def content_of(chunks: list[Any]) -> list[str]:
    return [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]


async def read_content_into(stream: Any, received: list[str]) -> None:
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received.append(chunk.choices[0].delta.content)


def upstream_body(mock: MockServer) -> dict[str, Any]:
    return mock.stats.last_request_bodies[-1]


def words(messages: list[dict[str, Any]]) -> int:
    return sum(len(str(m.get("content") or "").split()) for m in messages)


async def raw_chat(
    session: aiohttp.ClientSession, proxy: Proxy, body: dict[str, Any]
) -> tuple[int, dict[str, str], bytes]:
    async with session.post(f"{proxy.url}/v1/chat/completions", json=body) as resp:
        return resp.status, dict(resp.headers), await resp.read()


def data_lines(raw: bytes) -> list[bytes]:
    return [block[6:] for block in raw.split(b"\n\n") if block.startswith(b"data: ")]


# --- streaming ----------------------------------------------------------------------------------


async def test_streaming_forwards_each_upstream_chunk_as_one_content_chunk(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=6"}))
    async with openai_client(proxy) as client:
        chunks = await stream_chunks(client)
    first = chunks[0]
    assert first.choices[0].delta.role == "assistant"
    assert first.object == "chat.completion.chunk"
    assert first.id.startswith("chatcmpl-") and first.model == "a" and first.created > 0
    assert {c.id for c in chunks} == {first.id}
    assert content_of(chunks) == ["tok0", " tok1", " tok2", " tok3", " tok4", " tok5"]
    assert "".join(content_of(chunks)) == expected_text(MockBehaviour(chunks=6))
    assert [c.choices[0].finish_reason for c in chunks] == [None] * 7 + ["stop"]
    assert all(c.usage is None for c in chunks)


async def test_include_usage_adds_a_usage_chunk_with_the_upstream_counts(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=5"}))
    async with openai_client(proxy) as client:
        chunks = await stream_chunks(
            client,
            messages=[{"role": "user", "content": "one two three"}],
            stream_options={"include_usage": True},
        )
    *_, finish, usage_chunk = chunks
    assert finish.choices[0].finish_reason == "stop"
    assert usage_chunk.choices == []
    prompt_tokens = words(upstream_body(mock)["messages"])
    assert usage_chunk.usage.prompt_tokens == prompt_tokens == 3
    assert usage_chunk.usage.completion_tokens == 5
    assert usage_chunk.usage.total_tokens == prompt_tokens + 5


async def test_the_last_chunk_and_the_completion_name_the_fallback_model_that_answered(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    agent = {"model": "down?fault=http500", "fallback_models": ["mock:good?chunks=2"]}
    proxy = await make_proxy(settings_for(mock, {"a": agent}, retry={"max_attempts": 1}))
    async with openai_client(proxy) as client:
        chunks = await stream_chunks(client, stream_options={"include_usage": True})
        completion = await client.chat.completions.create(model="a", messages=HI)
    *content, finish, usage_chunk = chunks
    assert {c.model for c in content} == {"a"}  # what the client asked for, until the answer is known
    assert finish.choices[0].finish_reason == "stop"
    assert finish.model == usage_chunk.model == "mock:good?chunks=2"
    assert completion.model == "mock:good?chunks=2"
    assert completion.choices[0].message.content == "tok0 tok1"


async def test_non_streaming_answers_one_chat_completion(mock: MockServer, make_proxy: ProxyFactory) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=4"}))
    async with openai_client(proxy) as client:
        completion = await client.chat.completions.create(model="a", messages=HI)
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-") and completion.model == "mock:m?chunks=4"
    [choice] = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == expected_text(MockBehaviour(chunks=4))
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 4
    assert completion.usage.prompt_tokens == words(upstream_body(mock)["messages"])


@pytest.mark.parametrize("stream", [True, False])
async def test_finish_reason_length(mock: MockServer, make_proxy: ProxyFactory, stream: bool) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=2&finish=length"}))
    async with openai_client(proxy) as client:
        if stream:
            finish = (await stream_chunks(client))[-1].choices[0].finish_reason
        else:
            finish = (await client.chat.completions.create(model="a", messages=HI)).choices[0].finish_reason
    assert finish == "length"


async def test_text_parts_reach_the_upstream_as_parts(mock: MockServer, make_proxy: ProxyFactory) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?echo=1"}))
    hello = [{"type": "text", "text": "hello"}, {"type": "text", "text": "world"}]
    earlier = [{"type": "text", "text": "first"}, {"type": "text", "text": "question"}]
    messages: list[Any] = [
        {"role": "user", "content": earlier},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": hello},
    ]
    async with openai_client(proxy) as client:
        chunks = await stream_chunks(client, messages=messages)
    sent = upstream_body(mock)["messages"]
    assert sent[0] == {"role": "user", "content": earlier}
    assert sent[-1] == {"role": "user", "content": hello}
    assert "".join(content_of(chunks)) == expected_text(MockBehaviour(echo=True), sent)


async def test_multi_turn_messages_reach_the_upstream_in_order(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?echo=1"}))
    messages: list[Any] = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
    ]
    async with openai_client(proxy) as client:
        completion = await client.chat.completions.create(model="a", messages=messages)
    sent = upstream_body(mock)["messages"]
    assert [(m["role"], m["content"]) for m in sent] == [(m["role"], m["content"]) for m in messages]
    assert completion.choices[0].message.content == "echo: second question (messages: 3)"


@pytest.mark.parametrize("allowed", [False, True])
async def test_system_messages_are_instructions_only_when_the_agent_allows_it(
    mock: MockServer, make_proxy: ProxyFactory, allowed: bool
) -> None:
    agent = {"model": "m?echo=1", "allow_system_messages": allowed}
    proxy = await make_proxy(settings_for(mock, {"a": agent}))
    messages: list[Any] = [
        {"role": "system", "content": "BE TERSE"},
        {"role": "developer", "content": "NO EMOJI"},
        {"role": "user", "content": "hi"},
    ]
    async with openai_client(proxy) as client:
        await client.chat.completions.create(model="a", messages=messages)
    sent = orjson.dumps(upstream_body(mock)["messages"]).decode()
    assert ("BE TERSE" in sent) is allowed
    assert ("NO EMOJI" in sent) is allowed


async def test_sampling_options_reach_the_upstream(mock: MockServer, make_proxy: ProxyFactory) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=2"}))
    async with openai_client(proxy) as client:
        await client.chat.completions.create(
            model="a", messages=HI, max_tokens=7, temperature=0.25, top_p=0.5, stop=["x", "y"], user="u-1"
        )
        first = upstream_body(mock)
        await stream_chunks(client, max_completion_tokens=9, stop="z")
        second = upstream_body(mock)
    assert first.get("max_tokens", first.get("max_completion_tokens")) == 7
    assert first["temperature"] == 0.25
    assert first["top_p"] == 0.5
    assert first["stop"] == ["x", "y"]
    assert first["user"] == "u-1"
    assert second.get("max_tokens", second.get("max_completion_tokens")) == 9
    assert second["stop"] == ["z"]


async def test_unknown_fields_are_ignored(mock: MockServer, make_proxy: ProxyFactory) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=2"}))
    async with openai_client(proxy) as client:
        completion = await client.chat.completions.create(
            model="a", messages=HI, extra_body={"frobnicate": {"x": 1}, "seed": 3}
        )
    assert completion.choices[0].message.content == "tok0 tok1"


async def test_heartbeats_are_sse_comments_that_the_sdk_ignores(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(
        settings_for(mock, {"a": "m?ttfc_ms=400&chunks=3"}, server={"heartbeat_interval_s": 0.1})
    )
    status, headers, raw = await raw_chat(session, proxy, {"model": "a", "messages": HI, "stream": True})
    assert status == 200
    assert headers["Content-Type"] == "text/event-stream"
    assert headers["Cache-Control"] == "no-cache"
    before_content = raw[: raw.index(b'"content":"tok0"')]
    assert before_content.count(b": keepalive\n\n") >= 2, raw
    assert raw.endswith(b"data: [DONE]\n\n")
    async with openai_client(proxy) as client:
        chunks = await stream_chunks(client)
    assert "".join(content_of(chunks)) == "tok0 tok1 tok2"


async def test_models_list_names_the_agents(mock: MockServer, make_proxy: ProxyFactory) -> None:
    proxy = await make_proxy(settings_for(mock, {"b": "m", "a": "m"}))
    async with openai_client(proxy) as client:
        models = [m async for m in client.models.list()]
    assert [m.id for m in models] == ["a", "b"]
    assert all(m.object == "model" for m in models)


async def test_client_leaving_mid_stream_ends_the_run(mock: MockServer, make_proxy: ProxyFactory) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=50&gap_ms=50"}))
    async with openai_client(proxy) as client:
        stream = await client.chat.completions.create(model="a", messages=HI, stream=True)
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        await stream.close()
    await mock.stats.wait_for(lambda s: s.total.streams_closed_by_client == 1, timeout=5)


# --- upstream faults ----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_fault_before_the_first_chunk_is_retried_invisibly(
    mock: MockServer, make_proxy: ProxyFactory, stream: bool
) -> None:
    fast = {"backoff_initial_s": 0.01, "backoff_jitter_s": 0}
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=3&fault=http500&fault_times=1"}, retry=fast))
    text: str | None
    async with openai_client(proxy) as client:
        if stream:
            text = "".join(content_of(await stream_chunks(client)))
        else:
            text = (await client.chat.completions.create(model="a", messages=HI)).choices[0].message.content
    assert text == "tok0 tok1 tok2"
    assert mock.stats.total.requests == 2


async def test_fault_after_the_first_chunk_makes_the_sdk_raise(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=6&fault=drop&after=2"}))
    received: list[str] = []
    async with openai_client(proxy) as client:
        stream = await client.chat.completions.create(model="a", messages=HI, stream=True)
        with pytest.raises(openai.APIError) as raised:
            await read_content_into(stream, received)
    assert received == ["tok0", " tok1"]
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["code"] == "upstream_dropped"
    assert mock.stats.total.requests == 1  # mid-stream: no retry that would repeat text


async def test_fault_after_the_first_chunk_sends_an_error_chunk_and_no_done(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=6&fault=drop&after=2"}))
    status, _, raw = await raw_chat(session, proxy, {"model": "a", "messages": HI, "stream": True})
    assert status == 200
    lines = data_lines(raw)
    assert b"[DONE]" not in lines
    error = orjson.loads(lines[-1])["error"]
    assert error["code"] == "upstream_dropped" and error["type"] == "server_error" and error["message"]
    assert [orjson.loads(x)["choices"][0]["delta"].get("content") for x in lines[:-1]] == [
        "",
        "tok0",
        " tok1",
    ]
    await proxy.engine.wait_idle(2)


async def test_a_non_retryable_upstream_error_in_a_stream_makes_the_sdk_raise(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?fault=http400"}))
    async with openai_client(proxy) as client:
        with pytest.raises(openai.APIError) as raised:
            await stream_chunks(client)
    assert isinstance(raised.value.body, dict) and raised.value.body["code"] == "upstream_bad_request"


NON_STREAMING_FAULTS = [
    ("m?fault=http500", 502, "upstream_unavailable", openai.InternalServerError),
    # The upstream refused a request the proxy made: not the client's mistake, so no BadRequestError.
    ("m?fault=http400", 502, "upstream_bad_request", openai.InternalServerError),
    ("m?fault=http429", 429, "upstream_rate_limited", openai.RateLimitError),
    ("m?fault=context_length", 400, "context_too_long", openai.BadRequestError),
    ("m?fault=malformed&after=1", 502, "upstream_malformed", openai.InternalServerError),
    ("m?ttfc_ms=3000", 504, "first_token_timeout", openai.InternalServerError),
]


@pytest.mark.parametrize(("model", "status", "code", "error_class"), NON_STREAMING_FAULTS)
async def test_non_streaming_upstream_failure_has_the_mapped_status(
    mock: MockServer,
    make_proxy: ProxyFactory,
    model: str,
    status: int,
    code: str,
    error_class: type[openai.APIStatusError],
) -> None:
    settings = settings_for(mock, {"a": model}, retry={"max_attempts": 1}, timeouts={"first_token_s": 0.2})
    proxy = await make_proxy(settings)
    async with openai_client(proxy) as client:
        with pytest.raises(error_class) as raised:
            await client.chat.completions.create(model="a", messages=HI)
    assert raised.value.status_code == status
    assert raised.value.code == code
    assert isinstance(raised.value.body, dict) and raised.value.body["message"]


async def test_shutdown_mid_stream_is_an_error_not_a_complete_answer(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=50&gap_ms=100"}))

    async def read() -> bytes:
        body = {"model": "a", "messages": HI, "stream": True}
        async with session.post(f"{proxy.url}/v1/chat/completions", json=body) as resp:
            return await resp.read()

    reading = asyncio.create_task(read())
    await mock.stats.wait_for(lambda s: s.total.streams_started == 1, timeout=5)
    await proxy.engine.drain(0)
    lines = data_lines(await reading)
    assert b"[DONE]" not in lines
    assert orjson.loads(lines[-1])["error"]["code"] == "shutdown"


# --- bad requests -------------------------------------------------------------------------------

BAD_BODIES: list[tuple[str, dict[str, Any], str | None]] = [
    # name, fields added to a good body, OpenAI `param`
    ("no messages", {"messages": []}, "messages"),
    ("messages not a list", {"messages": "hi"}, "messages"),
    ("function role", {"messages": [{"role": "function", "content": "x", "name": "f"}]}, "messages[0].role"),
    ("no role", {"messages": [{"content": "x"}]}, "messages[0].role"),
    (
        "role a list",
        {"messages": [{"role": [], "content": "x"}]},
        "messages[0].role",
    ),  # found by schemathesis
    (
        "image part",
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
        "messages[0].content[0]",
    ),
    ("content a number", {"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ("last message not user", {"messages": [{"role": "assistant", "content": "x"}]}, "messages"),
    ("temperature a string", {"temperature": "hot"}, "temperature"),
    ("temperature out of range", {"temperature": 3}, "temperature"),
    ("top_p a bool", {"top_p": True}, "top_p"),
    ("max_tokens negative", {"max_tokens": -1}, "max_tokens"),
    ("max_completion_tokens a float", {"max_completion_tokens": 1.5}, "max_completion_tokens"),
    ("stop a number", {"stop": 5}, "stop"),
    ("stop a list of numbers", {"stop": [1]}, "stop"),
    ("user a number", {"user": 5}, "user"),
    ("stream a string", {"stream": "yes"}, "stream"),
    ("include_usage a string", {"stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
    ("n of 2", {"n": 2}, "n"),
]


@pytest.mark.parametrize(("name", "fields", "param"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
async def test_bad_request_raises_bad_request_error_and_reaches_no_upstream(
    mock: MockServer, make_proxy: ProxyFactory, name: str, fields: dict[str, Any], param: str | None
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    async with openai_client(proxy) as client:
        with pytest.raises(openai.BadRequestError) as raised:
            await client.chat.completions.create(model="a", messages=HI, extra_body=fields)
    assert raised.value.status_code == 400
    assert raised.value.type == "invalid_request_error"
    assert raised.value.param == param
    assert mock.stats.total.requests == 0


async def test_unknown_model_raises_not_found(mock: MockServer, make_proxy: ProxyFactory) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    async with openai_client(proxy) as client:
        with pytest.raises(openai.NotFoundError) as raised:
            await client.chat.completions.create(model="nope", messages=HI, stream=True)
    assert raised.value.code == "model_not_found"
    assert raised.value.param == "model"
    assert mock.stats.total.requests == 0


async def test_draining_answers_503_with_retry_after(mock: MockServer, make_proxy: ProxyFactory) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    proxy.engine.draining = True
    async with openai_client(proxy) as client:
        with pytest.raises(openai.InternalServerError) as raised:
            await client.chat.completions.create(model="a", messages=HI)
    assert raised.value.status_code == 503
    assert raised.value.code == "draining"
    assert raised.value.response.headers["Retry-After"] == "1"
    assert mock.stats.total.requests == 0


RAW_BAD: list[tuple[str, dict[str, Any], int, str]] = [
    (
        "malformed json",
        {"data": b"{nope", "headers": {"Content-Type": "application/json"}},
        400,
        "invalid_json",
    ),
    ("not an object", {"json": [1]}, 400, "invalid_body"),
    (
        "form body",
        {"data": b"model=a", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        415,
        "unsupported_media_type",
    ),
    (
        "body over the limit",
        {"json": {"model": "a", "messages": [], "pad": "x" * 20_000}},
        413,
        "body_too_large",
    ),
    (
        "prompt over the limit",
        {"json": {"model": "a", "messages": [{"role": "user", "content": "x" * 3000}]}},
        413,
        "prompt_too_long",
    ),
]


@pytest.mark.parametrize(("name", "kwargs", "status", "code"), RAW_BAD, ids=[c[0] for c in RAW_BAD])
async def test_body_errors_use_openai_error_shape(
    mock: MockServer,
    make_proxy: ProxyFactory,
    session: aiohttp.ClientSession,
    name: str,
    kwargs: dict[str, Any],
    status: int,
    code: str,
) -> None:
    settings = settings_for(mock, {"a": "m"}, server={"max_body_bytes": 16_384, "max_prompt_chars": 2000})
    proxy = await make_proxy(settings)
    async with session.post(f"{proxy.url}/v1/chat/completions", **kwargs) as resp:
        body = await resp.json()
    assert resp.status == status
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code
    assert body["error"]["type"] == "invalid_request_error"
    assert mock.stats.total.requests == 0
