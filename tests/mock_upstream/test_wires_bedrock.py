"""The Bedrock Converse wire as boto3 sees it: the eventstream, tool use, usage and faults."""

from __future__ import annotations

import asyncio
from typing import Any

import botocore.exceptions
import pytest
import urllib3

from proxy.mock_upstream import MockBehaviour, MockServer, expected_text

USER: Any = [{"role": "user", "content": [{"text": "hello mock upstream"}]}]
TOOLS: Any = {"tools": [{"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object"}}}}]}
TOOL_MODEL = "t?tool=get_time&tool_args=%7B%22tz%22%3A%22UTC%22%7D"


async def _events(client: Any, model: str, seen: list[Any] | None = None, **extra: Any) -> list[Any]:
    """The events of a `converse_stream`, each appended to `seen` as it arrives."""

    def run() -> list[Any]:
        out: list[Any] = [] if seen is None else seen
        for event in client.converse_stream(modelId=model, messages=USER, **extra)["stream"]:
            out.append(event)
        return out

    return await asyncio.to_thread(run)


def _texts(events: list[Any]) -> list[str]:
    return [e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e]


async def test_streamed_text_stop_reason_and_usage(bedrock_client: Any, mock: MockServer) -> None:
    events = await _events(bedrock_client, "m?chunks=3")
    assert events[0] == {"messageStart": {"role": "assistant"}}
    assert _texts(events) == ["tok0", " tok1", " tok2"]
    assert "".join(_texts(events)) == expected_text(MockBehaviour(chunks=3))
    assert events[-2] == {"messageStop": {"stopReason": "end_turn"}}
    assert events[-1]["metadata"]["usage"] == {"inputTokens": 3, "outputTokens": 3, "totalTokens": 6}
    await mock.stats.wait_for(lambda s: s.for_model("m?chunks=3").streams_completed == 1, 5)


async def test_non_streamed_text_with_system_prompt(bedrock_client: Any) -> None:
    response = await asyncio.to_thread(
        bedrock_client.converse, modelId="e?echo=1", messages=USER, system=[{"text": "be brief"}]
    )
    assert response["output"]["message"]["content"] == [{"text": "echo: hello mock upstream (messages: 2)"}]
    assert response["stopReason"] == "end_turn"


async def test_streamed_tool_use_then_its_result(bedrock_client: Any) -> None:
    events = await _events(bedrock_client, TOOL_MODEL, toolConfig=TOOLS)
    start = next(e["contentBlockStart"]["start"]["toolUse"] for e in events if "contentBlockStart" in e)
    arguments = "".join(
        e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events if "contentBlockDelta" in e
    )
    assert (start["name"], arguments) == ("get_time", '{"tz":"UTC"}')
    assert {"messageStop": {"stopReason": "tool_use"}} in events
    history = [
        *USER,
        {"role": "assistant", "content": [{"toolUse": {**start, "input": {"tz": "UTC"}}}]},
        {
            "role": "user",
            "content": [{"toolResult": {"toolUseId": start["toolUseId"], "content": [{"text": "noon"}]}}],
        },
    ]
    response = await asyncio.to_thread(
        bedrock_client.converse, modelId=TOOL_MODEL, messages=history, toolConfig=TOOLS
    )
    [block] = response["output"]["message"]["content"]
    assert block["text"].endswith("(tool result: noon)")


async def test_non_streamed_tool_use_and_cache_usage(bedrock_client: Any) -> None:
    response = await asyncio.to_thread(
        bedrock_client.converse,
        modelId=TOOL_MODEL + "&cache_read=4&cache_write=1",
        messages=USER,
        toolConfig=TOOLS,
    )
    [block] = response["output"]["message"]["content"]
    assert (block["toolUse"]["name"], block["toolUse"]["input"]) == ("get_time", {"tz": "UTC"})
    assert response["stopReason"] == "tool_use"
    assert response["usage"]["cacheReadInputTokens"] == 4
    assert response["usage"]["cacheWriteInputTokens"] == 1


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        ("http429", "ThrottlingException", 429),
        ("overloaded", "ServiceUnavailableException", 503),
        ("context_length", "ValidationException", 400),
        ("http500", "InternalServerException", 500),
    ],
)
async def test_http_faults_raise_the_modelled_exceptions(
    bedrock_client: Any, fault: str, code: str, status: int
) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        await _events(bedrock_client, f"f?fault={fault}")
    assert isinstance(info.value, getattr(bedrock_client.exceptions, code))
    assert info.value.response["Error"]["Code"] == code
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


async def test_mid_stream_model_stream_error(bedrock_client: Any) -> None:
    seen: list[Any] = []
    with pytest.raises(botocore.exceptions.EventStreamError) as info:
        await _events(bedrock_client, "e?fault=instream_error&after=2", seen)
    assert _texts(seen) == ["tok0", " tok1"]
    assert info.value.response["Error"]["Code"] == "modelStreamErrorException"


async def test_unfinished_stream_has_no_message_stop(bedrock_client: Any) -> None:
    events = await _events(bedrock_client, "n?fault=no_finish&after=2")
    assert _texts(events) == ["tok0", " tok1"]
    assert not any("messageStop" in e for e in events)


async def test_dropped_stream_is_urllib3s_protocol_error(bedrock_client: Any) -> None:
    seen: list[Any] = []
    with pytest.raises(urllib3.exceptions.ProtocolError):  # boto3's event stream does not wrap it
        await _events(bedrock_client, "d?fault=drop&after=1", seen)
    assert _texts(seen) == ["tok0"]
