"""The Gemini wire as the official `google-genai` SDK sees it: text, function calls, usage, faults."""

from __future__ import annotations

from urllib.parse import quote

import aiohttp
import pytest
from google import genai
from google.genai import errors, types

from proxy.mock_upstream import MockBehaviour, MockServer, expected_text

TOOL = types.Tool(
    function_declarations=[types.FunctionDeclaration(name="get_time", parameters_json_schema={})]
)
TOOL_MODEL = "t?tool=get_time&tool_args=%7B%22tz%22%3A%22UTC%22%7D"


def model(name: str) -> str:
    """google-genai refuses `?` and `&` in a model name, so the options travel URL-quoted in the path."""
    return quote(name, safe="")


async def _stream_text(client: genai.Client, name: str, seen: list[str]) -> list[types.FinishReason | None]:
    """The finish reasons of a streamed answer's chunks; its text goes to `seen`."""
    reasons: list[types.FinishReason | None] = []
    async for chunk in await client.aio.models.generate_content_stream(model=model(name), contents="hi"):
        seen.append(chunk.text or "")
        reasons.append(chunk.candidates[0].finish_reason if chunk.candidates else None)
    return reasons


async def test_streamed_text_finish_and_usage(gemini_client: genai.Client) -> None:
    chunks: list[types.GenerateContentResponse] = []
    async for chunk in await gemini_client.aio.models.generate_content_stream(
        model=model("m?chunks=3"), contents="hello mock upstream"
    ):
        chunks.append(chunk)
    assert [c.text or "" for c in chunks] == ["tok0", " tok1", " tok2", ""]
    last = chunks[-1]
    assert last.candidates is not None
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata is not None
    assert (last.usage_metadata.prompt_token_count, last.usage_metadata.candidates_token_count) == (3, 3)


async def test_non_streamed_text_with_system_instruction_and_history(
    gemini_client: genai.Client, mock: MockServer
) -> None:
    response = await gemini_client.aio.models.generate_content(
        model=model("e?echo=1"),
        contents=[
            types.Content(role="user", parts=[types.Part(text="first")]),
            types.Content(role="model", parts=[types.Part(text="ok")]),
            types.Content(role="user", parts=[types.Part(text="second")]),
        ],
        config=types.GenerateContentConfig(system_instruction="be brief"),
    )
    assert response.text == "echo: second (messages: 4)"
    assert mock.stats.for_model("e?echo=1").responses_completed == 1


async def test_function_call_then_its_response(gemini_client: genai.Client) -> None:
    config = types.GenerateContentConfig(tools=[TOOL])
    response = await gemini_client.aio.models.generate_content(
        model=model(TOOL_MODEL), contents="time?", config=config
    )
    [call] = response.function_calls or []
    assert (call.name, call.args) == ("get_time", {"tz": "UTC"})
    assert response.candidates is not None
    history = [
        types.Content(role="user", parts=[types.Part(text="time?")]),
        response.candidates[0].content,
        types.Content(
            role="user",
            parts=[types.Part.from_function_response(name="get_time", response={"result": "noon"})],
        ),
    ]
    answer = await gemini_client.aio.models.generate_content(
        model=model(TOOL_MODEL), contents=history, config=config
    )
    assert answer.text is not None
    assert answer.text.endswith("(tool result: noon)")


async def test_streamed_function_call(gemini_client: genai.Client) -> None:
    calls: list[types.FunctionCall] = []
    async for chunk in await gemini_client.aio.models.generate_content_stream(
        model=model(TOOL_MODEL), contents="time?", config=types.GenerateContentConfig(tools=[TOOL])
    ):
        calls += chunk.function_calls or []
    assert [(c.name, c.args) for c in calls] == [("get_time", {"tz": "UTC"})]


async def test_json_output_for_a_schema(gemini_client: genai.Client) -> None:
    config = types.GenerateContentConfig(
        response_mime_type="application/json",
        response_json_schema={"type": "object", "properties": {"city": {"type": "string"}}},
    )
    response = await gemini_client.aio.models.generate_content(
        model=model("j"), contents="a city", config=config
    )
    assert response.text == '{"city":"city"}'


async def test_cached_tokens_and_safety_finish(gemini_client: genai.Client) -> None:
    response = await gemini_client.aio.models.generate_content(
        model=model("c?cache_read=4&finish=content_filter"), contents="hello mock upstream"
    )
    assert response.usage_metadata is not None
    assert response.usage_metadata.cached_content_token_count == 4
    assert response.usage_metadata.prompt_token_count == 7
    assert response.candidates is not None
    assert response.candidates[0].finish_reason == types.FinishReason.SAFETY
    assert response.text == expected_text(MockBehaviour())


@pytest.mark.parametrize(
    ("fault", "exc", "code", "status"),
    [
        ("http429", errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
        ("overloaded", errors.ServerError, 503, "UNAVAILABLE"),
        ("http503", errors.ServerError, 503, "UNAVAILABLE"),
        ("context_length", errors.ClientError, 400, "INVALID_ARGUMENT"),
        ("http500", errors.ServerError, 500, "INTERNAL"),
    ],
)
async def test_http_faults_raise_the_sdk_error_classes(
    gemini_client: genai.Client, fault: str, exc: type[errors.APIError], code: int, status: str
) -> None:
    with pytest.raises(exc) as info:
        await _stream_text(gemini_client, f"f?fault={fault}", [])
    assert (info.value.code, info.value.status) == (code, status)


async def test_mid_stream_error_raises_after_the_chunks_sent(gemini_client: genai.Client) -> None:
    seen: list[str] = []
    with pytest.raises(errors.ServerError) as info:
        await _stream_text(gemini_client, "e?fault=instream_error&after=2", seen)
    assert seen == ["tok0", " tok1"]
    assert (info.value.code, info.value.status) == (500, "INTERNAL")


async def test_unfinished_stream_has_no_finish_reason(gemini_client: genai.Client) -> None:
    seen: list[str] = []
    reasons = await _stream_text(gemini_client, "n?fault=no_finish&after=2", seen)
    assert (seen, reasons) == (["tok0", " tok1"], [None, None])


async def test_dropped_stream_is_a_payload_error(gemini_client: genai.Client) -> None:
    seen: list[str] = []
    with pytest.raises(aiohttp.ClientPayloadError):  # google-genai's async client runs on aiohttp
        await _stream_text(gemini_client, "d?fault=drop&after=1", seen)
    assert seen == ["tok0"]
