"""A stream's input and events survive the trip through a shared state backend (Redis), so that a
replica taking a stream over runs what the client asked for and a resumed client reads every field."""

from __future__ import annotations

import orjson

from proxy.engine.inputs import (
    ChatMessage,
    ClientTool,
    ClientTools,
    Image,
    ResponseFormat,
    RunOptions,
    chat_input,
)
from proxy.events import End, FunctionCall
from proxy.state.codec import decode_event, decode_input, encode_event, encode_input


def test_an_openai_request_with_tools_and_a_response_format_survives_encoding() -> None:
    call = FunctionCall("c1", "f", '{"x":1}')
    request = chat_input(
        [
            ChatMessage("user", ("two", "parts")),
            ChatMessage("assistant", "", tool_calls=(call,)),
            ChatMessage("tool", "result", tool_call_id="c1"),
        ],
        False,
        RunOptions(temperature=0.5, parallel_tool_calls=False),
        tools=ClientTools((ClientTool("f", {"type": "object"}, "does f", strict=True),), "required", "f"),
        response_format=ResponseFormat({"type": "object"}, "answer", strict=True),
    )
    assert decode_input(orjson.loads(orjson.dumps(encode_input(request)))) == request


def test_a_request_with_images_in_its_prompt_and_history_survives_encoding() -> None:
    call = FunctionCall("c1", "screenshot", "{}")
    request = chat_input(
        [
            ChatMessage("user", ("see", Image(url="https://example.com/a.jpg"))),
            ChatMessage("assistant", "", tool_calls=(call,)),
            ChatMessage("tool", ("taken", Image(data=b"\x89PNG", media_type="image/png")), tool_call_id="c1"),
            ChatMessage("user", ("and this", Image(data=b"GIF8", media_type="image/gif"))),
        ],
        False,
        None,
    )
    assert decode_input(orjson.loads(orjson.dumps(encode_input(request)))) == request


def test_an_end_with_tool_calls_survives_encoding() -> None:
    end = End(
        stream_id="str_1",
        finish_reason="tool_calls",
        text="",
        attempts=1,
        model="mock:fast",
        ttft_s=None,
        duration_s=0.5,
        conversation_id=None,
        tool_calls=[FunctionCall("c1", "f", "{}")],
    )
    assert decode_event(encode_event(end)) == end


def test_an_end_written_before_end_model_existed_still_resumes() -> None:
    end = End(
        stream_id="str_1",
        finish_reason="stop",
        text="hi",
        attempts=1,
        model="",
        ttft_s=0.1,
        duration_s=0.5,
        conversation_id=None,
    )
    old = orjson.loads(encode_event(end))
    del old["model"]
    assert decode_event(orjson.dumps(old)) == end
