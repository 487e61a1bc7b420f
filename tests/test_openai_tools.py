"""The OpenAI endpoint with the client's own tools, `tool_choice` and `response_format` (protocol.md
3.4), driven by the official `openai` SDK and by pydantic-ai agents as clients."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema
import openai
import orjson
import pytest
from pydantic import BaseModel
from pydantic_ai import Agent, NativeOutput
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from proxy.mock_upstream import MockServer
from tests.conftest import Proxy, ProxyFactory, settings_for
from tests.test_mcp import LIST, stdio_settings
from tests.test_openai import HI, openai_client, stream_chunks, upstream_body
from tests.test_structured_output import PERSON

WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME: Any = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}
ARGS = '{"city":"Paris"}'
CALLS_WEATHER = f"m?tool=get_weather&tool_args={quote(ARGS)}"
"""A mock model that calls `get_weather` until it has a tool result, then answers with text."""


def tool_call_deltas(chunks: list[Any]) -> list[Any]:
    return [
        tc
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
        for tc in c.choices[0].delta.tool_calls
    ]


async def test_a_client_tool_call_streams_as_tool_calls_deltas(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": CALLS_WEATHER}))
    async with openai_client(proxy) as client:
        chunks = await stream_chunks(client, tools=[WEATHER])
    first, *rest = tool_call_deltas(chunks)
    assert (first.index, first.id, first.type) == (0, "call_1", "function")
    assert first.function.name == "get_weather" and first.function.arguments == ""
    assert all(d.index == 0 and d.id is None and d.function.name is None for d in rest)
    assert "".join(d.function.arguments for d in rest) == ARGS
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert not any(c.choices and c.choices[0].delta.content for c in chunks)
    # The upstream was offered the client's tool as the client described it.
    [offered] = upstream_body(mock)["tools"]
    assert offered["function"]["name"] == "get_weather"
    assert offered["function"]["parameters"] == WEATHER["function"]["parameters"]


async def test_a_client_tool_call_without_streaming(mock: MockServer, make_proxy: ProxyFactory) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": CALLS_WEATHER}))
    async with openai_client(proxy) as client:
        completion = await client.chat.completions.create(model="a", messages=HI, tools=[WEATHER])
    [choice] = completion.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.id == "call_1" and call.type == "function"
    assert call.function.name == "get_weather" and call.function.arguments == ARGS


@pytest.mark.parametrize("stream", [True, False])
async def test_tool_results_continue_the_conversation(
    mock: MockServer, make_proxy: ProxyFactory, stream: bool
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": CALLS_WEATHER}))
    messages: list[Any] = [
        *HI,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ARGS}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    async with openai_client(proxy) as client:
        if stream:
            chunks = await stream_chunks(client, messages=messages, tools=[WEATHER])
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
        else:
            completion = await client.chat.completions.create(model="a", messages=messages, tools=[WEATHER])
            text, finish = completion.choices[0].message.content or "", completion.choices[0].finish_reason
    assert text.endswith("(tool result: sunny)")
    assert finish == "stop"
    sent = upstream_body(mock)["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"][0]["id"] == "call_1"
    assert sent[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": ARGS}
    assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}


@pytest.mark.parametrize(
    ("tool_choice", "sent"),
    [
        ("none", "none"),
        ("auto", "auto"),
        ("required", "required"),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
    ],
)
async def test_tool_choice_reaches_the_upstream(
    mock: MockServer, make_proxy: ProxyFactory, tool_choice: Any, sent: Any
) -> None:
    model = "m?chunks=2" if tool_choice == "none" else CALLS_WEATHER
    proxy = await make_proxy(settings_for(mock, {"a": model}))
    async with openai_client(proxy) as client:
        completion = await client.chat.completions.create(
            model="a", messages=HI, tools=[WEATHER, TIME], tool_choice=tool_choice
        )
    assert upstream_body(mock)["tool_choice"] == sent
    expected = "stop" if tool_choice == "none" else "tool_calls"
    assert completion.choices[0].finish_reason == expected


async def test_parallel_tool_calls_false_reaches_the_upstream(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": CALLS_WEATHER}))
    async with openai_client(proxy) as client:
        await client.chat.completions.create(
            model="a", messages=HI, tools=[WEATHER], parallel_tool_calls=False
        )
    assert upstream_body(mock)["parallel_tool_calls"] is False


def person_format(strict: bool = True) -> Any:
    return {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": strict}}


@pytest.mark.parametrize("stream", [True, False])
async def test_response_format_json_schema_answers_an_object_of_that_schema(
    mock: MockServer, make_proxy: ProxyFactory, stream: bool
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    async with openai_client(proxy) as client:
        if stream:
            chunks = await stream_chunks(client, response_format=person_format())
            content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            completion = await client.chat.completions.create(
                model="a", messages=HI, response_format=person_format()
            )
            content = completion.choices[0].message.content or ""
    jsonschema.validate(orjson.loads(content), PERSON)
    fmt = upstream_body(mock)["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "person"
    assert fmt["json_schema"]["strict"] is True


async def test_response_format_output_that_stays_invalid_fails_with_the_validation_error(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    bad = quote(orjson.dumps({"name": "x", "tags": []}).decode())
    proxy = await make_proxy(settings_for(mock, {"a": {"model": f"bad?json={bad}", "output_retries": 1}}))
    async with openai_client(proxy) as client:
        with pytest.raises(openai.APIStatusError) as raised:
            await client.chat.completions.create(model="a", messages=HI, response_format=person_format(False))
    assert raised.value.code == "invalid_output"
    assert "'age' is a required property" in raised.value.message
    assert mock.stats.total.requests == 2


async def test_response_format_json_object_answers_a_json_object(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    async with openai_client(proxy) as client:
        completion = await client.chat.completions.create(
            model="a", messages=HI, response_format={"type": "json_object"}
        )
    assert isinstance(orjson.loads(completion.choices[0].message.content or ""), dict)
    assert upstream_body(mock)["response_format"] == {"type": "json_object"}


async def test_response_format_text_is_plain_text(mock: MockServer, make_proxy: ProxyFactory) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=2"}))
    async with openai_client(proxy) as client:
        completion = await client.chat.completions.create(
            model="a", messages=HI, response_format={"type": "text"}
        )
    assert completion.choices[0].message.content == "tok0 tok1"


CALL = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
BAD_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("tools not a list", {"tools": {}}, "tools"),
    ("tool of another type", {"tools": [{"type": "code_interpreter"}]}, "tools[0].type"),
    ("tool without a name", {"tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
    (
        "tool name with a space",
        {"tools": [{"type": "function", "function": {"name": "get weather"}}]},
        "tools[0].function.name",
    ),
    (
        "tool parameters not an object",
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]},
        "tools[0].function.parameters",
    ),
    (
        "tool parameters of a string",
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]},
        "tools[0].function.parameters",
    ),
    (
        "tool parameters with a $ref to nowhere",
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"$ref": "#/nope"}}}]},
        "tools[0].function.parameters",
    ),
    ("tool named twice", {"tools": [WEATHER, WEATHER]}, "tools[1].function.name"),
    ("tool_choice required without tools", {"tool_choice": "required"}, "tool_choice"),
    ("tool_choice unknown", {"tools": [WEATHER], "tool_choice": "always"}, "tool_choice"),
    (
        "tool_choice names no offered tool",
        {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
        "tool_choice",
    ),
    ("parallel_tool_calls a string", {"parallel_tool_calls": "yes"}, "parallel_tool_calls"),
    ("legacy functions", {"functions": [WEATHER["function"]]}, "functions"),
    ("legacy function_call", {"function_call": "auto"}, "function_call"),
    ("response_format unknown type", {"response_format": {"type": "xml"}}, "response_format.type"),
    (
        "json_schema without a schema",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "p"}}},
        "response_format.json_schema.schema",
    ),
    (
        "json_schema not of an object",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "p", "schema": {"type": "string"}},
            }
        },
        "response_format.json_schema.schema",
    ),
    (
        "json_schema that is no JSON Schema",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "p", "schema": {"type": "object", "properties": 5}},
            }
        },
        "response_format.json_schema.schema",
    ),
    (
        "json_schema with a $ref to nowhere",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "p",
                    "schema": {"type": "object", "properties": {"a": {"$ref": "#/$defs/a"}}},
                },
            }
        },
        "response_format.json_schema.schema",
    ),
    (
        "tool message without tool_call_id",
        {"messages": [*HI, {"role": "assistant", "tool_calls": [CALL]}, {"role": "tool", "content": "x"}]},
        "messages[2].tool_call_id",
    ),
    (
        "tool message answering no call",
        {"messages": [*HI, {"role": "tool", "tool_call_id": "c9", "content": "x"}]},
        "messages[1].tool_call_id",
    ),
    (
        "tool call without a function",
        {"messages": [*HI, {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function"}]}, *HI]},
        "messages[1].tool_calls[0].function",
    ),
    (
        "assistant without content or tool calls",
        {"messages": [*HI, {"role": "assistant"}, *HI]},
        "messages[1].content",
    ),
]


@pytest.mark.parametrize(("name", "fields", "param"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
async def test_what_cannot_be_honoured_is_a_400_naming_the_field(
    mock: MockServer, make_proxy: ProxyFactory, name: str, fields: dict[str, Any], param: str
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    async with openai_client(proxy) as client:
        with pytest.raises(openai.BadRequestError) as raised:
            await client.chat.completions.create(model="a", messages=HI, extra_body=fields)
    assert raised.value.type == "invalid_request_error"
    assert raised.value.param == param
    assert mock.stats.total.requests == 0


@pytest.mark.parametrize(
    ("fields", "param"),
    [({"response_format": person_format()}, "response_format"), ({"tools": [WEATHER]}, "tools")],
)
async def test_an_agent_with_its_own_output_schema_refuses_another_answer_shape(
    mock: MockServer, make_proxy: ProxyFactory, fields: dict[str, Any], param: str
) -> None:
    proxy = await make_proxy(settings_for(mock, {"p": {"model": "person", "output_schema": PERSON}}))
    async with openai_client(proxy) as client:
        with pytest.raises(openai.BadRequestError) as raised:
            await client.chat.completions.create(model="p", messages=HI, extra_body=fields)
    assert raised.value.param == param
    assert mock.stats.total.requests == 0


# --- pydantic-ai agents as clients ----------------------------------------------------------------


class Person(BaseModel):
    name: str
    age: int
    tags: list[str]


def client_model(proxy: Proxy, agent: str = "a") -> OpenAIChatModel:
    return OpenAIChatModel(agent, provider=OpenAIProvider(base_url=f"{proxy.url}/v1", api_key="x"))


async def test_a_pydantic_ai_agent_with_output_type_gets_its_object(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    """pydantic-ai asks for structured output with an output tool (a client tool for the proxy)."""
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    result = await Agent(client_model(proxy), output_type=Person).run("make a person")
    assert isinstance(result.output, Person)
    assert upstream_body(mock)["tools"][0]["function"]["name"].startswith("final_result")
    await proxy.engine.wait_idle(2)


async def test_a_pydantic_ai_agent_with_native_output_gets_its_object(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    async with Agent(client_model(proxy), output_type=NativeOutput(Person)).run_stream(
        "make a person"
    ) as run:
        output = await run.get_output()
    assert isinstance(output, Person)
    assert upstream_body(mock)["response_format"]["type"] == "json_schema"
    await proxy.engine.wait_idle(2)


async def test_a_pydantic_ai_agent_runs_its_own_tools_through_the_proxy(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": CALLS_WEATHER}))
    agent = Agent(client_model(proxy))
    cities: list[str] = []

    @agent.tool_plain
    def get_weather(city: str) -> str:
        cities.append(city)
        return f"sunny in {city}"

    async with agent.run_stream("weather?") as run:
        text = await run.get_output()
    assert cities == ["Paris"]
    assert text.endswith("(tool result: sunny in Paris)")
    assert mock.stats.total.requests == 2
    await proxy.engine.wait_idle(2)


async def test_a_client_tool_named_like_one_of_the_agents_own_tools_is_a_400(
    mock: MockServer, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    # The agent's MCP tools are only listed when its run starts, so the clash shows there: it must
    # still be the client's 400, never the proxy's 500.
    proxy = await make_proxy(stdio_settings(mock, tmp_path, LIST))
    clash: Any = {"type": "function", "function": {"name": "list_files", "parameters": {"type": "object"}}}
    async with openai_client(proxy) as client:
        with pytest.raises(openai.BadRequestError) as raised:
            await client.chat.completions.create(model="a", messages=HI, tools=[clash])
    assert raised.value.code == "tool_name_conflict"
    assert "list_files" in raised.value.message
