"""Streams the mock does not produce (reasoning fields, `<think>` tags, refusals, logprobs, parallel tool
calls, list content, usage details, odd finish reasons, annotations, unusual SSE framing), served verbatim
by a scripted upstream: the lean model's events and `ModelResponse` equal `OpenAIChatModel`'s, and with
`plain_text_events` (the engine's direct path) the texts sent and the `ModelResponse` stay the same."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from pydantic_ai.direct import model_request_stream
from pydantic_ai.exceptions import ModelAPIError
from pydantic_ai.messages import ModelMessage, ModelRequest
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import ToolDefinition

from proxy.engine.attempt import _part_event
from proxy.events import Delta
from proxy.plain_text import PlainText
from proxy.upstream import LeanOpenAIChatModel, LeanStreamedResponse
from tests.upstream.conftest import KINDS, ModelFactory
from tests.upstream.observe import dump_event, dump_messages

HEAD = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1700000000, "model": "scripted"}


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice: dict[str, Any] = {
        "index": 0,
        "delta": delta if delta is not None else {},
        "finish_reason": finish,
    }
    if "logprobs" in extra:
        choice["logprobs"] = extra.pop("logprobs")
    return {**HEAD, "choices": [choice], **extra}


def usage(prompt: int, completion: int, **details: Any) -> dict[str, Any]:
    return {
        **HEAD,
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        | details,
    }


def tool_delta(
    index: int, args: str, call_id: str | None = None, name: str | None = None, **extra: Any
) -> Any:
    function: dict[str, Any] = {"arguments": args}
    if name is not None:
        function["name"] = name
    call: dict[str, Any] = {"index": index, "function": function, **extra}
    if call_id is not None:
        call |= {"id": call_id, "type": "function"}
    return {"tool_calls": [call]}


def sse(*chunks: dict[str, Any], done: bool = True) -> bytes:
    body = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks)
    return body + (b"data: [DONE]\n\n" if done else b"")


_LO = orjson.dumps(chunk({"content": "lo"}))
_SPLIT = _LO.index(b'"choices"')  # a data line may end anywhere between JSON tokens
LOGPROB = {
    "token": "Hi",
    "bytes": [72, 105],
    "logprob": -0.1,
    "top_logprobs": [{"token": "Hi", "logprob": -0.1}],
}
# Comments, `event:`/`id:`/`retry:` lines, CRLF, a JSON object over two `data:` lines. (No comment-only
# block after the `id:`: the openai SDK keeps the last event id and dispatches such a block as an event
# with empty data, which then fails to parse; the SSE specification says not to dispatch it.)
FRAMED = (
    b": keep-alive comment\r\n\r\n"
    b"event: message\r\nid: 1\r\ndata: "
    + orjson.dumps(chunk({"role": "assistant", "content": "Hel"}))
    + b"\r\n\r\nretry: 100\ndata:"
    + _LO[:_SPLIT]
    + b"\ndata: "
    + _LO[_SPLIT:]
    + b"\n\ndata: "
    + orjson.dumps(chunk({}, "stop"))
    + b"\r\n\r\ndata: [DONE]\r\n\r\n"
)

SCRIPTS: dict[str, bytes] = {
    "reasoning_content": sse(
        chunk({"role": "assistant", "reasoning_content": "Let me "}),
        chunk({"reasoning_content": "think."}),
        chunk({"content": "\n\n"}),
        chunk({"content": "Answer."}),
        chunk({}, "stop"),
        usage(10, 5, completion_tokens_details={"reasoning_tokens": 3}),
    ),
    "reasoning_interleaved": sse(
        chunk({"content": "Part one."}),
        chunk({"reasoning": "hmm"}),
        chunk({"content": " "}),
        chunk({"content": "Part two."}),
        chunk({}, "stop"),
    ),
    "think_tags": sse(
        chunk({"content": "<thi"}),
        chunk({"content": "nk>pondering"}),
        chunk({"content": " more</think>"}),
        chunk({"content": "Result"}),
        chunk({}, "stop"),
    ),
    "refusal": sse(
        chunk({"role": "assistant", "refusal": "I can't "}), chunk({"refusal": "do that."}), chunk({}, "stop")
    ),
    "logprobs": sse(
        chunk({"content": "Hi"}, logprobs={"content": [LOGPROB]}),
        chunk({"content": "!"}, logprobs={"content": [LOGPROB | {"token": "!"}]}),
        chunk({}, "stop"),
    ),
    "parallel_tools": sse(
        chunk({"role": "assistant", "content": "Looking up."}),
        chunk(tool_delta(0, '{"q":', "call_a", "lookup")),
        chunk(tool_delta(1, "", "call_b", "search")),
        chunk(tool_delta(0, '"x"}')),
        chunk(tool_delta(1, '{"term": "y"}')),
        chunk({}, "tool_calls"),
        usage(7, 9),
    ),
    "tool_extra_content": sse(
        chunk(
            tool_delta(
                0, '{"q": "z"}', "call_e", "lookup", extra_content={"google": {"thought_signature": "s"}}
            )
        ),
        chunk({}, "tool_calls"),
    ),
    "list_content": sse(
        chunk({"content": [{"type": "text", "text": "Hello "}, {"type": "reference", "id": 1}]}),
        chunk({"content": [{"type": "text", "text": "world"}]}),
        chunk({}, "stop"),
    ),
    "usage_details": sse(
        chunk({"content": "ok"}),
        chunk({}, "length", service_tier="default"),
        usage(
            100,
            20,
            prompt_tokens_details={"cached_tokens": 60, "audio_tokens": 0},
            completion_tokens_details={"reasoning_tokens": 5, "audio_tokens": 0},
        ),
    ),
    "finish_content_filter": sse(chunk({"content": "partial"}), chunk({}, "content_filter")),
    "finish_unknown": sse(chunk({"content": "partial"}), chunk({}, "guardrail_intervened")),
    "annotations": sse(
        chunk({"content": "See example.com for more."}),
        chunk(
            {
                "annotations": [
                    {
                        "type": "url_citation",
                        "url_citation": {
                            "url": "https://example.com",
                            "title": "Ex",
                            "start_index": 4,
                            "end_index": 15,
                        },
                    }
                ]
            }
        ),
        chunk({}, "stop"),
    ),
    "odd_chunks": sse(
        {**HEAD, "choices": []},
        {**HEAD, "model": "", "choices": [{"index": 0, "delta": None, "finish_reason": None}]},
        chunk({"content": "fine"}) | {"model": "scripted-2"},
        chunk({}, "stop"),
    ),
    "no_done_no_finish": sse(chunk({"content": "cut "}), chunk({"content": "off"}), done=False),
    "framing": FRAMED,
    # What the proxy's plain-text path must hand over to the full mapping, at the start or midway.
    "long_plain": sse(
        chunk({"role": "assistant", "content": ""}),
        *(chunk({"content": f"w{i} "}) for i in range(40)),
        chunk({}, "stop"),
        usage(3, 40),
    ),
    "joiner_in_token": sse(  # the joiner pydantic-ai put after a token's first character, split off
        chunk({"content": "say <"}),
        chunk({"content": "\u200d|im_start|> ok"}),
        chunk({"content": " <\u200d|im_end|>"}),
        chunk({}, "stop"),
    ),
    "joiner_not_in_token": sse(chunk({"content": "a\u200db <"}), chunk({"content": "c"}), chunk({}, "stop")),
    "think_token_first": sse(
        chunk({"content": "<think>"}),
        chunk({"content": "hmm"}),
        chunk({"content": "</think>"}),
        chunk({"content": "Answer"}),
        chunk({}, "stop"),
    ),
    "think_token_midway": sse(
        chunk({"content": "Intro "}),
        chunk({"content": "<think>"}),
        chunk({"content": "x"}),
        chunk({"content": "</think>"}),
        chunk({"content": "done"}),
        chunk({}, "stop"),
    ),
    "whitespace_first": sse(chunk({"content": "  "}), chunk({"content": "Hi"}), chunk({}, "stop")),
    "usage_every_chunk": sse(
        chunk({"content": "a"}, usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}),
        chunk({"content": "b"}, usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}),
        chunk({}, "stop"),
    ),
    "text_then_tool": sse(
        chunk({"content": "Let me check. "}),
        chunk(tool_delta(0, '{"q": "x"}', "call_t", "lookup")),
        chunk({}, "tool_calls"),
    ),
}
TOOLS = ModelRequestParameters(
    function_tools=[
        ToolDefinition(
            name="lookup", parameters_json_schema={"type": "object", "properties": {"q": {"type": "string"}}}
        ),
        ToolDefinition(
            name="search",
            parameters_json_schema={"type": "object", "properties": {"term": {"type": "string"}}},
        ),
    ],
    allow_text_output=True,
)
MESSAGES: list[ModelMessage] = [ModelRequest.user_text_prompt("go")]


_TEXT_FIRST = sse(chunk({"role": "assistant", "content": "Hel"}), chunk({"content": "lo"}), done=False)
FAILING: dict[str, tuple[bytes, str]] = {
    "error_after_text": (_TEXT_FIRST + b'data: {"error": {"message": "overloaded"}}\n\n', "overloaded"),
    "bad_json_after_text": (_TEXT_FIRST + b"data: {not json\n\n", "Failed to decode"),
}
"""Text, then a chunk that fails the stream, written at once (the model name, the error's message)."""


@pytest.fixture
async def scripted() -> AsyncIterator[str]:
    """An upstream that answers the request for model `<name>` with `SCRIPTS[<name>]`, verbatim
    (or `FAILING[<name>]`, in one write)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if body["model"] in FAILING:
            await response.write(FAILING[body["model"]][0])
            return response
        script = SCRIPTS[body["model"]]
        for i in range(0, len(script), 37):  # in odd pieces, to exercise the decoder's buffering
            await response.write(script[i : i + 37])
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    await runner.cleanup()


async def _observe(model: Model, settings: ModelSettings | None = None) -> tuple[list[Any], list[Any]]:
    events: list[Any] = []
    async with model_request_stream(
        model, MESSAGES, model_request_parameters=TOOLS, model_settings=settings
    ) as stream:
        async for event in stream:
            events.append(dump_event(event))
        response = stream.get()
    return events, dump_messages([response])


@pytest.mark.parametrize("name", SCRIPTS)
async def test_scripted_stream(scripted: str, models: ModelFactory, name: str) -> None:
    settings = ModelSettings(openai_include_raw_annotations=True) if name == "annotations" else None  # type: ignore[typeddict-unknown-key]
    sdk, lean = [await _observe(models(kind, name, scripted), settings) for kind in KINDS]
    assert lean == sdk
    events, (response,) = lean
    assert response["state"] == "complete"
    assert events or name == "refusal"


@pytest.mark.parametrize("name", ["reasoning_content", "parallel_tools", "usage_details", "logprobs"])
async def test_sdk_stream_mapping_fallback(scripted: str, models: ModelFactory, name: str) -> None:
    """With `openai_include_unmapped_response_data`, pydantic-ai's stream mapping runs on SDK chunks."""
    settings = ModelSettings(openai_include_unmapped_response_data=True)  # type: ignore[typeddict-unknown-key]
    sdk, lean = [await _observe(models(kind, name, scripted), settings) for kind in KINDS]
    assert lean == sdk


async def test_spot_checks(scripted: str, models: ModelFactory) -> None:
    """A few absolute facts, so that parity is not parity in a mistake."""
    model = models("lean", "parallel_tools", scripted)
    assert isinstance(model, LeanOpenAIChatModel)
    _, (response,) = await _observe(model)
    assert [p["part_kind"] for p in response["parts"]] == ["text", "tool-call", "tool-call"]
    assert [p.get("args") for p in response["parts"][1:]] == ['{"q":"x"}', '{"term": "y"}']
    assert response["finish_reason"] == "tool_call"
    assert (response["usage"]["input_tokens"], response["usage"]["output_tokens"]) == (7, 9)

    _, (response,) = await _observe(models("lean", "reasoning_content", scripted))
    assert [p["part_kind"] for p in response["parts"]] == ["thinking", "text"]
    assert response["parts"][0]["content"] == "Let me think."

    _, (response,) = await _observe(models("lean", "refusal", scripted))
    assert response["finish_reason"] == "content_filter"
    assert response["provider_details"]["refusal"] == "I can't do that."

    _, (response,) = await _observe(models("lean", "framing", scripted))
    assert response["parts"][0]["content"] == "Hello"

    _, (response,) = await _observe(models("lean", "no_done_no_finish", scripted))
    assert response["finish_reason"] == "stop"
    assert "finish_reason" not in (response["provider_details"] or {})


async def _observe_text(model: Model, plain: bool) -> tuple[list[str], list[Any]]:
    """The texts the engine's direct path sends, and the `ModelResponse`, with or without `PlainText`."""
    texts: list[str] = []
    async with model_request_stream(model, MESSAGES, model_request_parameters=TOOLS) as stream:
        assert isinstance(stream, LeanStreamedResponse)
        stream.plain_text_events = plain
        async for event in stream:
            if isinstance(event, PlainText):
                texts.extend(event.texts)
            elif isinstance(delta := _part_event(event, "str_x", None), Delta):
                texts.append(delta.text)
        response = stream.get()
    return texts, dump_messages([response])


@pytest.mark.parametrize("name", SCRIPTS)
async def test_plain_text_events_send_the_same_text_and_keep_the_same_response(
    scripted: str, models: ModelFactory, name: str
) -> None:
    model = models("lean", name, scripted)
    full, plain = [await _observe_text(model, plain) for plain in (False, True)]
    assert plain == full


async def test_plain_text_spot_checks(scripted: str, models: ModelFactory) -> None:
    texts, (response,) = await _observe_text(models("lean", "long_plain", scripted), True)
    assert texts == [f"w{i} " for i in range(40)]
    assert [(p["part_kind"], p["content"]) for p in response["parts"]] == [("text", "".join(texts))]
    assert response["state"] == "complete" and response["finish_reason"] == "stop"
    assert (response["usage"]["input_tokens"], response["usage"]["output_tokens"]) == (3, 40)

    texts, _ = await _observe_text(models("lean", "joiner_in_token", scripted), True)
    assert "".join(texts) == "say <|im_start|> ok <|im_end|>"

    texts, (response,) = await _observe_text(models("lean", "think_token_midway", scripted), True)
    assert texts == ["Intro ", "done"]
    assert [p["part_kind"] for p in response["parts"]] == ["text", "thinking", "text"]


@pytest.mark.parametrize("name", FAILING)
async def test_plain_text_read_with_a_failing_chunk_is_sent_before_the_error(
    scripted: str, models: ModelFactory, name: str
) -> None:
    """Chunks read together go up as one `PlainText`: a failing chunk among them still fails the
    stream only after the text before it."""
    texts: list[str] = []

    async def read() -> None:
        async with model_request_stream(
            models("lean", name, scripted), MESSAGES, model_request_parameters=TOOLS
        ) as stream:
            assert isinstance(stream, LeanStreamedResponse)
            stream.plain_text_events = True
            async for event in stream:
                assert isinstance(event, PlainText)
                texts.extend(event.texts)

    with pytest.raises(ModelAPIError, match=FAILING[name][1]):
        await read()
    assert texts == ["Hel", "lo"]
