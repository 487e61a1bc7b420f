"""The OpenAI Responses wire as the official `openai` SDK sees it: text, function calls, usage, faults."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai import AsyncOpenAI

from proxy.mock_upstream import MockBehaviour, MockServer, expected_text

TOOLS: Any = [{"type": "function", "name": "get_time", "parameters": {"type": "object"}, "strict": False}]
TOOL_MODEL = "t?tool=get_time&tool_args=%7B%22tz%22%3A%22UTC%22%7D"


async def _stream_text(client: AsyncOpenAI, model: str, seen: list[str]) -> list[str]:
    """The event types of a streamed response; its text deltas go to `seen`."""
    types: list[str] = []
    stream = await client.responses.create(model=model, input="hello mock upstream", stream=True)
    async for event in stream:
        types.append(event.type)
        if event.type == "response.output_text.delta":
            seen.append(event.delta)
    return types


async def test_streamed_text_events_and_usage(client: AsyncOpenAI) -> None:
    async with client.responses.stream(model="m?chunks=3", input="hello mock upstream") as stream:
        deltas = [event.delta async for event in stream if event.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert deltas == ["tok0", " tok1", " tok2"]
    assert final.output_text == expected_text(MockBehaviour(chunks=3))
    assert final.status == "completed"
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.total_tokens) == (3, 3, 6)


async def test_event_sequence(client: AsyncOpenAI) -> None:
    types = await _stream_text(client, "m?chunks=2", [])
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]


async def test_non_streamed_text_with_instructions_and_history(client: AsyncOpenAI) -> None:
    response = await client.responses.create(
        model="e?echo=1",
        instructions="be brief",
        input=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "input_text", "text": "second"}]},
        ],
    )
    assert response.output_text == "echo: second (messages: 4)"
    assert response.status == "completed"


async def test_function_call_then_its_output(client: AsyncOpenAI) -> None:
    async with client.responses.stream(model=TOOL_MODEL, input="time?", tools=TOOLS) as stream:
        arguments = [e.delta async for e in stream if e.type == "response.function_call_arguments.delta"]
        final = await stream.get_final_response()
    [call] = final.output
    assert call.type == "function_call"
    assert (call.name, call.arguments, "".join(arguments)) == ("get_time", '{"tz":"UTC"}', '{"tz":"UTC"}')
    answer = await client.responses.create(
        model=TOOL_MODEL,
        tools=TOOLS,
        input=[
            {"role": "user", "content": "time?"},
            {"type": "function_call", "call_id": call.call_id, "name": "get_time", "arguments": "{}"},
            {"type": "function_call_output", "call_id": call.call_id, "output": "noon"},
        ],
    )
    assert answer.output_text.endswith("(tool result: noon)")


async def test_cached_tokens_in_usage(client: AsyncOpenAI) -> None:
    response = await client.responses.create(model="c?cache_read=5", input="hello mock upstream")
    assert response.usage is not None
    assert response.usage.input_tokens_details.cached_tokens == 5
    assert response.usage.input_tokens == 8


async def test_json_output_for_a_schema(client: AsyncOpenAI) -> None:
    schema: Any = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    response = await client.responses.create(
        model="j",
        input="a city",
        text={"format": {"type": "json_schema", "name": "City", "schema": schema}},
    )
    assert response.output_text == '{"city":"city"}'


async def test_length_finish_is_incomplete(client: AsyncOpenAI) -> None:
    response = await client.responses.create(model="l?finish=length", input="hi")
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


@pytest.mark.parametrize(
    ("fault", "exc"),
    [
        ("http429", openai.RateLimitError),
        ("http500", openai.InternalServerError),
        ("context_length", openai.BadRequestError),
    ],
)
async def test_http_faults_raise_the_sdk_error_classes(
    client: AsyncOpenAI, fault: str, exc: type[openai.APIStatusError]
) -> None:
    with pytest.raises(exc):
        await client.responses.create(model=f"f?fault={fault}", input="hi", stream=True)


async def test_mid_stream_failure_is_response_failed(client: AsyncOpenAI, mock: MockServer) -> None:
    seen: list[str] = []
    types = await _stream_text(client, "e?fault=instream_error&after=2", seen)
    assert seen == ["tok0", " tok1"]
    assert types[-1] == "response.failed"
    await mock.stats.wait_for(lambda s: s.total.streams_faulted == 1, 5)


async def test_failed_response_carries_the_error(client: AsyncOpenAI) -> None:
    stream = await client.responses.create(model="e?fault=instream_error", input="hi", stream=True)
    events = [event async for event in stream]
    assert events[-1].type == "response.failed"
    error = events[-1].response.error
    assert error is not None
    assert error.code == "server_error"


async def test_dropped_stream_is_a_connection_error(client: AsyncOpenAI) -> None:
    seen: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        await _stream_text(client, "d?fault=drop&after=1", seen)
    assert seen == ["tok0"]
