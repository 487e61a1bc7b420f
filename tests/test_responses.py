"""The Responses API door (protocol.md, DESIGN 13), driven by the official `openai` SDK: streaming and
not, the stream helper, the client's function tools, failures, and errors in OpenAI's shape."""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from urllib.parse import quote

import aiohttp
import openai
import orjson
import pytest
from openai import AsyncOpenAI
from openai.types.responses import ResponseFunctionToolCall
from prometheus_client.parser import text_string_to_metric_families

from proxy.mock_upstream import MockBehaviour, MockServer, expected_text
from tests.auth.helpers import ALPHA
from tests.auth.test_limits import limited
from tests.conftest import Proxy, ProxyFactory, settings_for
from tests.support import read_sse
from tests.test_openai import openai_client, upstream_body

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
ARGS = '{"city":"Paris"}'
CALLS_WEATHER = f"m?tool=get_weather&tool_args={quote(ARGS)}"
"""A mock model that calls `get_weather` until it has a tool result, then answers with text."""
TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


async def events_of(client: AsyncOpenAI, **kwargs: Any) -> list[Any]:
    kwargs.setdefault("model", "a")
    kwargs.setdefault("input", "hi")
    stream = await client.responses.create(stream=True, **kwargs)
    return [event async for event in stream]


async def raw_events(session: aiohttp.ClientSession, proxy: Proxy, body: dict[str, Any]) -> list[Any]:
    async with session.post(f"{proxy.url}/v1/responses", json={"stream": True, **body}) as resp:
        assert resp.status == 200
        return [e.data for e in (await read_sse(resp)).events]


async def test_a_streamed_response_sends_every_semantic_event_in_order(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=3"}))
    async with openai_client(proxy) as client:
        events = await events_of(client)
    assert [e.type for e in events] == TEXT_EVENTS
    assert [e.sequence_number for e in events] == list(range(len(events)))
    created, completed = events[0].response, events[-1].response
    assert created.id == completed.id and created.id.startswith("resp_")
    assert created.status == "in_progress" and completed.status == "completed"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == ["tok0", " tok1", " tok2"]
    assert completed.output_text == "".join(deltas) == expected_text(MockBehaviour(chunks=3))
    assert completed.usage is not None and completed.usage.output_tokens == 3
    assert completed.usage.total_tokens == completed.usage.input_tokens + 3
    assert completed.model == "a"


async def test_a_response_without_streaming_is_one_response_object(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=3"}))
    async with openai_client(proxy) as client:
        response = await client.responses.create(
            model="a", input=[{"role": "user", "content": "hi"}], metadata={"team": "search"}
        )
    assert response.object == "response" and response.status == "completed"
    assert response.output_text == "tok0 tok1 tok2"
    [message] = response.output
    assert message.type == "message" and message.role == "assistant"
    assert response.metadata == {"team": "search"}
    assert response.usage is not None and response.usage.output_tokens == 3


async def test_the_sdks_stream_helper_gets_its_final_response(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=4"}))
    async with openai_client(proxy) as client, client.responses.stream(model="a", input="hi") as stream:
        texts = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert final.output_text == "".join(texts) == "tok0 tok1 tok2 tok3"


async def test_instructions_and_developer_messages_are_added_to_the_agents_instructions(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    agents = {"a": {"model": "m?chunks=1", "instructions": "Be brief."}}
    proxy = await make_proxy(settings_for(mock, agents))
    items: Any = [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Use bash."}]},
        {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
    ]
    async with openai_client(proxy) as client:
        await client.responses.create(model="a", instructions="You are Codex.", input=items)
    [system, user] = upstream_body(mock)["messages"]
    assert system["role"] == "system"
    assert all(part in system["content"] for part in ("Be brief.", "You are Codex.", "Use bash."))
    assert user == {"role": "user", "content": "hi"}


async def test_sampling_fields_reach_the_upstream_and_the_token_limit_is_incomplete(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=2&finish=length"}))
    async with openai_client(proxy) as client:
        response = await client.responses.create(
            model="a", input="hi", max_output_tokens=2, temperature=0.5, top_p=0.9
        )
        body = upstream_body(mock)
        events = await events_of(client, max_output_tokens=2)
    assert body.get("max_tokens", body.get("max_completion_tokens")) == 2
    assert (body["temperature"], body["top_p"]) == (0.5, 0.9)
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert events[-1].type == "response.incomplete"


async def test_a_json_schema_text_format_answers_an_object_of_that_schema(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    text: Any = {"format": {"type": "json_schema", "name": "person", "schema": schema, "strict": True}}
    async with openai_client(proxy) as client:
        response = await client.responses.create(model="a", input="who?", text=text)
        events = await events_of(client, text=text)
    person = orjson.loads(response.output_text)
    assert set(person) == {"name", "age"} and isinstance(person["age"], int)
    assert events[-1].response.output_text == response.output_text
    assert upstream_body(mock)["response_format"]["json_schema"]["name"] == "person"


# --- the client's function tools -----------------------------------------------------------------


async def test_a_function_call_streams_as_an_output_item_with_argument_events(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": CALLS_WEATHER}))
    async with openai_client(proxy) as client:
        events = await events_of(client, tools=[WEATHER])
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    done = events[-2].item
    assert (done.type, done.name, done.arguments, done.call_id) == (
        "function_call",
        "get_weather",
        ARGS,
        "call_1",
    )
    assert events[-3].arguments == ARGS
    [call] = events[-1].response.output
    assert call.call_id == "call_1"
    [offered] = upstream_body(mock)["tools"]
    assert offered["function"]["name"] == "get_weather"
    assert offered["function"]["parameters"] == WEATHER["parameters"]


async def test_a_function_tool_round_trip_with_previous_response_id(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": CALLS_WEATHER}))
    async with openai_client(proxy) as client:
        first = await client.responses.create(model="a", input="weather in Paris?", tools=[WEATHER])
        [call] = first.output
        assert isinstance(call, ResponseFunctionToolCall) and call.arguments == ARGS
        output: Any = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
        second = await client.responses.create(
            model="a", previous_response_id=first.id, input=[output], tools=[WEATHER]
        )
    assert second.output_text.endswith("(tool result: sunny)")
    sent = upstream_body(mock)["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"][0]["id"] == "call_1" and sent[2]["tool_call_id"] == "call_1"


async def test_a_function_tool_round_trip_with_the_full_history_and_nothing_stored(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": CALLS_WEATHER}))
    question: Any = {"role": "user", "content": "weather in Paris?"}
    async with openai_client(proxy) as client:
        first = await client.responses.create(model="a", input=[question], tools=[WEATHER], store=False)
        [call] = first.output
        assert isinstance(call, ResponseFunctionToolCall)
        history = [
            question,
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": "rain"},
        ]
        events = await events_of(client, input=history, tools=[WEATHER], store=False)
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(first.id)
    assert events[-1].response.output_text.endswith("(tool result: rain)")
    assert len(proxy.conversations) == 0


async def test_hosted_tools_and_namespaces_are_not_offered_to_the_model(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=1"}))
    namespace = {"type": "namespace", "name": "agents", "tools": [{**WEATHER, "name": "spawn"}]}
    tools: Any = [WEATHER, {"type": "web_search", "external_web_access": True}, namespace]
    web_search: Any = {"type": "web_search"}
    async with openai_client(proxy) as client:
        response = await client.responses.create(model="a", input="hi", tools=tools)
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(model="a", input="hi", tools=tools, tool_choice=web_search)
    assert response.output_text == "tok0"
    assert [t["function"]["name"] for t in upstream_body(mock)["tools"]] == ["get_weather"]
    assert caught.value.param == "tool_choice"


# --- failures and errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "code"),
    [("fault=drop&after=2", "server_error"), ("fault=context_length", "context_length_exceeded")],
)
async def test_a_failed_stream_ends_with_response_failed_and_never_completed(
    mock: MockServer, make_proxy: ProxyFactory, fault: str, code: str
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": f"m?chunks=4&{fault}"}, retry={"max_attempts": 1}))
    async with openai_client(proxy) as client:
        events = await events_of(client)
    types = [e.type for e in events]
    assert types[-1] == "response.failed" and "response.completed" not in types
    assert [e.sequence_number for e in events] == list(range(len(events)))
    failed = events[-1].response
    assert failed.status == "failed" and failed.error is not None and failed.error.code == code


async def test_a_failure_before_any_text_is_retried_invisibly(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=2&fault=http500&fault_times=1"}))
    async with openai_client(proxy) as client:
        events = await events_of(client)
    assert events[-1].type == "response.completed" and events[-1].response.output_text == "tok0 tok1"
    assert mock.stats.total.requests == 2


async def test_a_failure_without_streaming_is_an_http_error_in_openais_shape(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?fault=http429"}, retry={"max_attempts": 1}))
    async with openai_client(proxy) as client:
        with pytest.raises(openai.RateLimitError) as caught:
            await client.responses.create(model="a", input="hi")
    assert caught.value.code == "upstream_rate_limited"


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "nope", "input": "hi"}, 404, "model"),
        ({"model": "a", "input": []}, 400, "input"),
        ({"model": "a", "input": [{"type": "item_reference", "id": "x"}]}, 400, "input[0].type"),
        ({"model": "a", "input": [{"role": "robot", "content": "hi"}]}, 400, "input[0].role"),
        (
            {"model": "a", "input": [{"role": "user", "content": [{"type": "input_file"}]}]},
            400,
            "input[0].content[0].type",
        ),
        (
            {
                "model": "a",
                "input": [{"role": "assistant", "content": [{"type": "input_image", "image_url": "x"}]}],
            },
            400,
            "input[0].content[0].type",
        ),
        (
            {"model": "a", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            400,
            "input[0].content[0].file_id",
        ),
        ({"model": "a", "input": "hi", "background": True}, 400, "background"),
        ({"model": "a", "input": "hi", "tools": [{"type": "function", "name": "a b"}]}, 400, "tools[0].name"),
        ({"model": "a", "input": "hi", "text": {"format": {"type": "xml"}}}, 400, "text.format.type"),
        ({"model": "a", "input": "hi", "max_output_tokens": 0}, 400, "max_output_tokens"),
        ({"model": "a", "input": "hi", "previous_response_id": "resp_unknown"}, 404, "previous_response_id"),
        (
            {"model": "a", "input": [{"type": "function_call_output", "call_id": "c9", "output": "x"}]},
            400,
            "input",
        ),
    ],
)
async def test_what_the_proxy_cannot_take_is_refused_naming_the_field(
    mock: MockServer,
    make_proxy: ProxyFactory,
    session: aiohttp.ClientSession,
    body: Any,
    status: int,
    param: str,
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    async with session.post(f"{proxy.url}/v1/responses", json=body) as resp:
        assert resp.status == status, await resp.text()
        error = (await resp.json())["error"]
    assert error["param"] == param and error["message"] and error["type"]
    assert mock.stats.total.requests == 0


async def test_heartbeats_are_sse_comments_before_the_first_event_with_content(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(
        settings_for(mock, {"a": "m?ttfc_ms=400&chunks=2"}, server={"heartbeat_interval_s": 0.1})
    )
    async with session.post(
        f"{proxy.url}/v1/responses", json={"model": "a", "input": "hi", "stream": True}
    ) as resp:
        raw = await resp.read()
    before = raw[: raw.index(b"response.output_item.added")]
    assert before.count(b": keepalive\n\n") >= 2, raw
    assert raw.rstrip().splitlines()[-1].startswith(b'data: {"type":"response.completed"')


async def test_metrics_count_the_responses_transport_under_the_agent_an_alias_reached(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"coder": {"model": "m?chunks=1", "aliases": ["gpt-5*"]}}))
    async with openai_client(proxy) as client:
        await client.responses.create(model="gpt-5-codex", input="hi")
    async with session.get(f"{proxy.url}/metrics") as resp:
        text = await resp.text()
    counted = {
        (s.labels["agent"], s.labels["outcome"])
        for family in text_string_to_metric_families(text)
        if family.name == "agent_proxy_requests"
        for s in family.samples
        if s.name == "agent_proxy_requests_total" and s.labels.get("transport") == "responses" and s.value
    }
    assert counted == {("coder", "stop")}


async def test_input_images_reach_the_model_inline_or_by_url(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=1"}))
    inline = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    content: Any = [
        {"type": "input_text", "text": "what are these?"},
        {"type": "input_image", "image_url": inline, "detail": "auto"},
        {"type": "input_image", "image_url": "https://example.com/cat.png"},
    ]
    async with openai_client(proxy) as client:
        response = await client.responses.create(model="a", input=[{"role": "user", "content": content}])
    assert response.output_text == "tok0"
    [user] = upstream_body(mock)["messages"]
    text, first, second = user["content"]
    assert text == {"type": "text", "text": "what are these?"}
    assert (first["image_url"]["url"], second["image_url"]["url"]) == (inline, "https://example.com/cat.png")


async def test_a_drain_ends_a_running_stream_with_response_failed_and_refuses_new_ones(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=50&gap_ms=100"}))
    reading = asyncio.create_task(raw_events(session, proxy, {"model": "a", "input": "hi"}))
    await mock.stats.wait_for(lambda s: s.total.streams_started == 1, timeout=5)
    await proxy.engine.drain(0)
    events = await reading
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["code"] == "server_error"
    async with openai_client(proxy) as client:
        with pytest.raises(openai.InternalServerError) as refused:
            await client.responses.create(model="a", input="hi")
    assert refused.value.status_code == 503 and refused.value.response.headers["Retry-After"] == "1"


async def test_a_key_over_its_request_limit_gets_429_with_retry_after(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await limited(make_proxy, mock, {"a": "m?chunks=1"}, requests_per_minute=1)
    async with AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key=ALPHA, max_retries=0) as client:
        await client.responses.create(model="a", input="hi")
        with pytest.raises(openai.RateLimitError) as refused:
            await client.responses.create(model="a", input="hi", stream=True)
    assert refused.value.code == "rate_limited"
    headers = refused.value.response.headers
    assert int(headers["Retry-After"]) > 0 and headers["x-ratelimit-remaining-requests"] == "0"
