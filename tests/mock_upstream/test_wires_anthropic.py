"""The Anthropic Messages wire as the official `anthropic` SDK sees it: text, tools, usage, faults."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from proxy.mock_upstream import MockBehaviour, MockServer, expected_text

USER: Any = [{"role": "user", "content": "hello mock upstream"}]
TOOLS: Any = [{"name": "get_time", "description": "the time", "input_schema": {"type": "object"}}]
TOOL_MODEL = "t?tool=get_time&tool_args=%7B%22tz%22%3A%22UTC%22%7D"


async def _stream_text(client: anthropic.AsyncAnthropic, model: str, seen: list[str]) -> None:
    async with client.messages.stream(model=model, max_tokens=64, messages=USER) as stream:
        async for text in stream.text_stream:
            seen.append(text)


async def test_streamed_text_usage_and_stop_reason(anthropic_client: anthropic.AsyncAnthropic) -> None:
    async with anthropic_client.messages.stream(model="m?chunks=4", max_tokens=64, messages=USER) as stream:
        deltas = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert deltas == ["tok0", " tok1", " tok2", " tok3"]
    assert final.content[0].type == "text"
    assert final.content[0].text == expected_text(MockBehaviour(chunks=4))
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (3, 4)
    assert final.model == "m?chunks=4"


async def test_non_streamed_text(anthropic_client: anthropic.AsyncAnthropic, mock: MockServer) -> None:
    message = await anthropic_client.messages.create(
        model="m?text=Hello+there&finish=length", max_tokens=64, messages=USER
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello there"
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 2
    assert mock.stats.total.responses_completed == 1


async def test_tool_use_streamed_then_answered_with_its_result(
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    async with anthropic_client.messages.stream(
        model=TOOL_MODEL, max_tokens=64, messages=USER, tools=TOOLS
    ) as stream:
        call = await stream.get_final_message()
    assert call.stop_reason == "tool_use"
    [block] = call.content
    assert block.type == "tool_use"
    assert (block.name, block.input) == ("get_time", {"tz": "UTC"})
    history: Any = [
        *USER,
        {"role": "assistant", "content": [block.model_dump()]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "noon"}]},
    ]
    answer = await anthropic_client.messages.create(
        model=TOOL_MODEL, max_tokens=64, messages=history, tools=TOOLS
    )
    assert answer.content[0].type == "text"
    assert answer.content[0].text.endswith("(tool result: noon)")
    assert answer.stop_reason == "end_turn"


async def test_non_streamed_tool_use(anthropic_client: anthropic.AsyncAnthropic) -> None:
    message = await anthropic_client.messages.create(
        model=TOOL_MODEL, max_tokens=64, messages=USER, tools=TOOLS
    )
    assert message.content[0].type == "tool_use"
    assert message.content[0].input == {"tz": "UTC"}


async def test_json_output_for_a_schema(anthropic_client: anthropic.AsyncAnthropic) -> None:
    schema: Any = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    message = await anthropic_client.messages.create(
        model="j",
        max_tokens=64,
        messages=USER,
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == '{"city":"city"}'


async def test_cache_tokens_in_usage(anthropic_client: anthropic.AsyncAnthropic) -> None:
    async with anthropic_client.messages.stream(
        model="c?cache_read=5&cache_write=7", max_tokens=64, messages=USER
    ) as stream:
        final = await stream.get_final_message()
    assert final.usage.cache_read_input_tokens == 5
    assert final.usage.cache_creation_input_tokens == 7
    assert final.usage.input_tokens == 3


async def test_overloaded_is_529_with_retry_after(anthropic_client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.OverloadedError) as info:
        await anthropic_client.messages.create(
            model="o?fault=overloaded&retry_after=2", max_tokens=64, messages=USER
        )
    assert info.value.status_code == 529
    assert info.value.type == "overloaded_error"
    assert info.value.response.headers["retry-after"] == "2"


@pytest.mark.parametrize(
    ("fault", "exc", "error_type"),
    [
        ("http429", anthropic.RateLimitError, "rate_limit_error"),
        ("http401", anthropic.AuthenticationError, "authentication_error"),
        ("context_length", anthropic.BadRequestError, "invalid_request_error"),
        ("http500", anthropic.InternalServerError, "api_error"),
    ],
)
async def test_http_faults_raise_the_sdk_error_classes(
    anthropic_client: anthropic.AsyncAnthropic,
    fault: str,
    exc: type[anthropic.APIStatusError],
    error_type: str,
) -> None:
    with pytest.raises(exc) as info:
        await _stream_text(anthropic_client, f"f?fault={fault}", [])
    assert info.value.type == error_type


async def test_mid_stream_overloaded_error_event(anthropic_client: anthropic.AsyncAnthropic) -> None:
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:
        await _stream_text(anthropic_client, "e?fault=instream_error&after=2", seen)
    assert seen == ["tok0", " tok1"]
    assert info.value.type == "overloaded_error"


async def test_bad_mock_parameter_is_a_400(anthropic_client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await anthropic_client.messages.create(model="m?nope=1", max_tokens=64, messages=USER)
    assert "nope" in str(info.value)


async def test_dropped_stream_is_a_connection_error(anthropic_client: anthropic.AsyncAnthropic) -> None:
    seen: list[str] = []
    with pytest.raises(anthropic.APIConnectionError):
        await _stream_text(anthropic_client, "d?fault=drop&after=2", seen)
    assert seen == ["tok0", " tok1"]


async def test_unfinished_stream_has_no_stop_reason(anthropic_client: anthropic.AsyncAnthropic) -> None:
    async with anthropic_client.messages.stream(
        model="n?fault=no_finish&after=2", max_tokens=64, messages=USER
    ) as stream:
        final = await stream.get_final_message()
    assert final.content[0].type == "text"
    assert (final.content[0].text, final.stop_reason) == ("tok0 tok1", None)
