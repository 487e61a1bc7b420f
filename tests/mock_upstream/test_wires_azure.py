"""Chat completions under Azure OpenAI's deployment paths, as `openai.AsyncAzureOpenAI` sees them."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai import AsyncAzureOpenAI

from proxy.mock_upstream import MockServer

USER: Any = [{"role": "user", "content": "hello mock upstream"}]


async def _stream_text(client: AsyncAzureOpenAI, model: str, seen: list[str]) -> list[str]:
    """The finish reasons of a streamed answer; its content deltas go to `seen`."""
    reasons: list[str] = []
    stream = await client.chat.completions.create(model=model, messages=USER, stream=True)
    async for chunk in stream:
        for choice in chunk.choices:
            seen.append(choice.delta.content or "")
            if choice.finish_reason:
                reasons.append(choice.finish_reason)
    return reasons


async def test_streamed_content_filter_finish(azure_client: AsyncAzureOpenAI, mock: MockServer) -> None:
    seen: list[str] = []
    reasons = await _stream_text(azure_client, "m?chunks=2&finish=content_filter", seen)
    assert "".join(seen) == "tok0 tok1"
    assert reasons == ["content_filter"]
    assert mock.stats.for_model("m?chunks=2&finish=content_filter").streams_completed == 1


async def test_non_streamed_answer_and_usage(azure_client: AsyncAzureOpenAI) -> None:
    completion = await azure_client.chat.completions.create(model="m?cache_read=2", messages=USER)
    assert completion.choices[0].message.content == "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 5
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 2


async def test_tool_call(azure_client: AsyncAzureOpenAI) -> None:
    completion = await azure_client.chat.completions.create(
        model="t?tool=get_time",
        messages=USER,
        tools=[{"type": "function", "function": {"name": "get_time", "parameters": {}}}],
    )
    [call] = completion.choices[0].message.tool_calls or []
    assert call.type == "function"
    assert call.function.name == "get_time"
    assert completion.choices[0].finish_reason == "tool_calls"


async def test_throttling_is_429_with_retry_after_ms(azure_client: AsyncAzureOpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        await azure_client.chat.completions.create(model="r?fault=http429&retry_after=0.25", messages=USER)
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after-ms"] == "250"
    assert info.value.response.request.url.path.startswith("/openai/deployments/")


async def test_mid_stream_error(azure_client: AsyncAzureOpenAI) -> None:
    seen: list[str] = []
    with pytest.raises(openai.APIError):
        await _stream_text(azure_client, "e?fault=instream_error&after=1", seen)
    assert seen == ["tok0"]
