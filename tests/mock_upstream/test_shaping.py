"""Answer shaping as clients see it: chunks, text, timing, usage, echo, tool calls, structured output."""

from __future__ import annotations

import itertools
import json
from typing import Any

import aiohttp
import orjson
import pytest
from openai import AsyncOpenAI
from pydantic import BaseModel

from proxy.mock_upstream import MockBehaviour, MockServer, expected_text

from .sse import USER, stream_chat


async def test_default_stream(session: aiohttp.ClientSession, mock: MockServer) -> None:
    out = await stream_chat(session, mock, "demo")
    assert out.status == 200
    assert out.headers["Content-Type"].startswith("text/event-stream")
    assert out.contents == ["tok0", " tok1", " tok2", " tok3", " tok4", " tok5", " tok6", " tok7"]
    assert out.text == expected_text(MockBehaviour())
    assert out.choice_chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert out.finish_reasons == ["stop"]
    assert out.done
    last = out.chunks[-1]
    assert last["choices"] == []
    assert last["usage"] == {"prompt_tokens": 3, "completion_tokens": 8, "total_tokens": 11}
    assert {c["model"] for c in out.chunks} == {"demo"}
    assert len({c["id"] for c in out.chunks}) == 1


async def test_usage_only_when_asked(session: aiohttp.ClientSession, mock: MockServer) -> None:
    out = await stream_chat(session, mock, "m", stream_options=None)
    assert all("usage" not in c for c in out.chunks)
    assert out.done
    out = await stream_chat(session, mock, "m?usage=0")
    assert all("usage" not in c for c in out.chunks)
    assert out.done


@pytest.mark.parametrize(
    ("model", "contents"),
    [
        ("m?chunks=64", [f"{' ' if i else ''}tok{i}" for i in range(64)]),
        ("m?text=Hello+brave+new+world", ["Hello", " brave", " new", " world"]),
        ("m?text=abcdefgh&chunks=3", ["abc", "def", "gh"]),
        ("m?chunks=0", []),
    ],
)
async def test_chunks_and_text(
    session: aiohttp.ClientSession, mock: MockServer, model: str, contents: list[str]
) -> None:
    out = await stream_chat(session, mock, model)
    assert out.contents == contents
    assert out.text == expected_text(MockBehaviour.from_model_name(model, MockBehaviour()))
    assert out.done
    assert out.finish_reasons == ["stop"]


async def test_finish_length(session: aiohttp.ClientSession, mock: MockServer) -> None:
    out = await stream_chat(session, mock, "m?finish=length&chunks=2")
    assert out.finish_reasons == ["length"]


async def test_ttfc_is_after_headers(session: aiohttp.ClientSession, mock: MockServer) -> None:
    out = await stream_chat(session, mock, "m?ttfc_ms=300&chunks=2")
    assert out.headers_at - out.started < 0.2  # headers are sent at once
    assert out.times[0] - out.started >= 0.29
    assert out.times[1] - out.times[0] < 0.1  # no gap configured


async def test_gap_between_chunks(session: aiohttp.ClientSession, mock: MockServer) -> None:
    out = await stream_chat(session, mock, "m?gap_ms=60&chunks=4")
    content_times = out.times[:4]
    assert content_times[0] - out.started < 0.05
    gaps = [b - a for a, b in itertools.pairwise(content_times)]
    assert len(gaps) == 3
    assert all(g >= 0.055 for g in gaps), gaps


async def test_echo_shows_history(session: aiohttp.ClientSession, mock: MockServer) -> None:
    history = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
    ]
    out = await stream_chat(session, mock, "conv?echo=1", messages=history)
    assert out.text == "echo: second question (messages: 4)"
    assert out.text == expected_text(MockBehaviour(echo=True), history)
    assert mock.stats.last_request_bodies[-1]["messages"] == history


async def test_openai_sdk_streaming(client: AsyncOpenAI, mock: MockServer) -> None:
    stream = await client.chat.completions.create(
        model="sdk?chunks=5", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    deltas: list[str] = []
    usage = None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            deltas.append(chunk.choices[0].delta.content)
        if chunk.usage:
            usage = chunk.usage
    assert "".join(deltas) == "tok0 tok1 tok2 tok3 tok4"
    assert usage is not None
    assert usage.completion_tokens == 5
    assert mock.stats.last_authorization == "Bearer sk-test"


async def test_openai_sdk_non_streaming(client: AsyncOpenAI) -> None:
    done = await client.chat.completions.create(model="m?text=all+at+once&ttfc_ms=10", messages=USER)
    assert done.object == "chat.completion"
    assert done.choices[0].message.content == "all at once"
    assert done.choices[0].finish_reason == "stop"
    assert done.usage is not None
    assert done.usage.prompt_tokens == 3
    assert done.usage.completion_tokens == 3


async def _sdk_stream_tool_call(client: AsyncOpenAI, model: str, messages: list[Any]) -> tuple[Any, ...]:
    stream = await client.chat.completions.create(model=model, messages=messages, stream=True)
    call_id = name = None
    args: list[str] = []
    finish = None
    text = ""
    async for chunk in stream:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        for call in choice.delta.tool_calls or []:
            call_id = call.id or call_id
            if call.function and call.function.name:
                name = call.function.name
            if call.function and call.function.arguments:
                args.append(call.function.arguments)
        text += choice.delta.content or ""
        finish = choice.finish_reason or finish
    return call_id, name, args, finish, text


async def test_tool_calls_then_answer(client: AsyncOpenAI) -> None:
    model = "agent?tool=get_weather&tool_args=%7B%22city%22%3A+%22Paris%22%7D&tool_calls=2"
    messages: list[Any] = list(USER)
    for n in (1, 2):
        call_id, name, args, finish, text = await _sdk_stream_tool_call(client, model, messages)
        assert (call_id, name, finish, text) == (f"call_{n}", "get_weather", "tool_calls", "")
        assert 2 <= len(args) <= 3
        assert json.loads("".join(args)) == {"city": "Paris"}
        messages.append(
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": "".join(args)},
                    }
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": call_id, "content": f"sunny {n}"})
    call_id, _, _, finish, text = await _sdk_stream_tool_call(client, model, messages)
    assert call_id is None
    assert finish == "stop"
    assert "sunny 2" in text
    assert text == expected_text(MockBehaviour(tool="get_weather"), messages)

    # non-streaming gives the same tool call
    done = await client.chat.completions.create(model=model, messages=USER)
    assert done.choices[0].finish_reason == "tool_calls"
    calls = done.choices[0].message.tool_calls
    assert calls is not None
    assert calls[0].id == "call_1"
    assert calls[0].function.name == "get_weather"  # type: ignore[union-attr]


class City(BaseModel):
    name: str
    population: int
    tags: list[str]


def _output_tool(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": "final_result", "parameters": schema}}]


async def test_structured_output_tool(session: aiohttp.ClientSession, mock: MockServer) -> None:
    tools = _output_tool(City.model_json_schema())
    out = await stream_chat(session, mock, "so?json_chunk=8", tools=tools, tool_choice="required")
    calls = [c["choices"][0]["delta"].get("tool_calls") for c in out.choice_chunks]
    pieces = [tc[0]["function"]["arguments"] for tc in calls if tc]
    assert calls[0] is not None
    assert calls[0][0]["function"]["name"] == "final_result"
    assert len(pieces) > 3
    assert all(len(p) <= 8 for p in pieces)
    City.model_validate_json("".join(pieces))
    assert out.finish_reasons == ["tool_calls"]


async def test_structured_output_response_format(session: aiohttp.ClientSession, mock: MockServer) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "City", "schema": City.model_json_schema()}}
    out = await stream_chat(session, mock, "so", response_format=fmt)
    assert len(out.contents) > 1
    City.model_validate_json(out.text)


async def test_forced_invalid_json(session: aiohttp.ClientSession, mock: MockServer) -> None:
    forced = '{"name": 3'
    tools = _output_tool(City.model_json_schema())
    out = await stream_chat(session, mock, "so?json=%7B%22name%22%3A+3&json_chunk=4", tools=tools)
    pieces = [
        c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in out.choice_chunks[:-1]
    ]
    assert "".join(pieces) == forced
    async with session.post(
        f"{mock.base_url}/chat/completions",
        json={"model": "so?json=%7B%22name%22%3A+3", "messages": USER, "tools": tools},
    ) as response:
        body = orjson.loads(await response.read())
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == forced


async def test_models_and_health(
    session: aiohttp.ClientSession, mock: MockServer, client: AsyncOpenAI
) -> None:
    models = await client.models.list()
    assert "mock" in [m.id for m in models.data]
    async with session.get(f"{mock.url}/health") as response:
        assert response.status == 200
