"""The lean model and `OpenAIChatModel` (openai SDK) against the same mock: same events, history, usage,
output, request bodies; text, tools, structured output, history, instructions and model settings."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_ai import Agent, NativeOutput, StructuredDict
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import Model
from pydantic_ai.profiles.openai import OpenAIModelProfile
from pydantic_ai.settings import ModelSettings

from proxy.mock_upstream import MockBehaviour, MockServer, expected_text
from tests.upstream.conftest import KINDS, ModelFactory, Parity, Scenario
from tests.upstream.observe import Observation, observe_run, observe_stream


class City(BaseModel):
    name: str
    population: int


CITY_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["name", "tags"],
}


def streamed(**kwargs: Any) -> Scenario:
    async def scenario(model: Model, requests: Any) -> Observation:
        return await observe_stream(model, requests=requests, **kwargs)

    return scenario


def ran(**kwargs: Any) -> Scenario:
    async def scenario(model: Model, requests: Any) -> Observation:
        return await observe_run(model, requests=requests, **kwargs)

    return scenario


def with_tool(agent: Agent[None, Any]) -> None:
    @agent.tool_plain
    def get_time(tz: str) -> str:
        """The time in a time zone."""
        return f"noon in {tz}"


MODES = {"stream": streamed, "run": ran}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("name", "behaviour"),
    [
        ("m?chunks=5", MockBehaviour(chunks=5)),
        ("m?chunks=64", MockBehaviour(chunks=64)),
        ("m?text=Hello+brave+new+world&chunks=3", MockBehaviour(text="Hello brave new world", chunks=3)),
        ("m?chunks=3&finish=length", MockBehaviour(chunks=3, finish="length")),
        ("m?chunks=3&usage=0", MockBehaviour(chunks=3, usage=False)),
    ],
)
async def test_text(parity: Parity, mode: str, name: str, behaviour: MockBehaviour) -> None:
    pair = await parity(name, MODES[mode]())
    pair.assert_same()
    obs = pair.lean
    assert obs.output == expected_text(behaviour)
    if mode == "stream":
        assert obs.text == obs.output
        assert obs.kinds()[:2] == ["part_start", "final_result"]
    last = obs.raw_messages[-1]
    assert isinstance(last, ModelResponse)
    assert last.provider_name == "mock"
    assert last.model_name == name
    assert last.finish_reason == ("length" if behaviour.finish == "length" else "stop")
    assert last.provider_details is not None
    assert last.provider_details["finish_reason"] == behaviour.finish
    if behaviour.usage:
        assert (obs.usage.input_tokens, obs.usage.output_tokens) == (2, behaviour.chunks)
    else:
        assert obs.usage.output_tokens == 0
    body = pair.lean_bodies[-1]
    assert body["model"] == name
    if mode == "stream":
        assert body["stream"] is True
        assert body["stream_options"] == {"include_usage": True}
    else:
        assert "stream_options" not in body


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("calls", [1, 2])
async def test_tool_round_trip(parity: Parity, mode: str, calls: int) -> None:
    name = f"t?tool=get_time&tool_args=%7B%22tz%22%3A%22UTC%22%7D&tool_calls={calls}&chunks=2"
    pair = await parity(name, MODES[mode](setup=with_tool))
    pair.assert_same()
    obs = pair.lean
    assert obs.output == "tok0 tok1 (tool result: noon in UTC)"
    assert obs.requests == calls + 1
    if mode == "stream":
        assert obs.kinds().count("function_tool_call") == calls
        call = next(ev for ev in obs.events if ev["event_kind"] == "function_tool_call")
        assert call["part"]["tool_name"] == "get_time"
        assert call["part"]["tool_call_id"] == "call_1"
        assert call["args_valid"] is True
    first, last = pair.lean_bodies[0], pair.lean_bodies[-1]
    assert [t["function"]["name"] for t in first["tools"]] == ["get_time"]
    assert [m["role"] for m in last["messages"]] == ["user"] + ["assistant", "tool"] * calls
    assert last["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "content": "noon in UTC"}
    assert last["messages"][1]["tool_calls"][0]["function"] == {
        "name": "get_time",
        "arguments": '{"tz":"UTC"}',
    }
    assert obs.usage.tool_calls == calls


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "output_type",
    [City, StructuredDict(CITY_SCHEMA, name="City"), NativeOutput(City)],
    ids=["model", "structured_dict", "native"],
)
async def test_structured_output(parity: Parity, mode: str, output_type: Any) -> None:
    pair = await parity("o?json_chunk=5", MODES[mode](output_type=output_type))
    pair.assert_same()
    obs = pair.lean
    body = pair.lean_bodies[-1]
    if isinstance(output_type, NativeOutput):
        assert body["response_format"]["type"] == "json_schema"
        assert obs.output == {"name": "name", "population": 1}
    else:
        assert body["tools"][0]["function"]["name"] == "final_result"
        assert obs.output in ({"name": "name", "population": 1}, {"name": "name", "tags": ["tags"]})
        if mode == "stream":
            starts = [ev for ev in obs.events if ev["event_kind"] == "part_start"]
            assert starts[0]["part"]["tool_name"] == "final_result"
            assert "output_tool_call" in obs.kinds()


HISTORY: list[ModelMessage] = [
    ModelRequest(parts=[SystemPromptPart("be brief"), UserPromptPart("first")]),
    ModelResponse(parts=[TextPart("let me look"), ToolCallPart("lookup", {"q": "x"}, tool_call_id="c1")]),
    ModelRequest(parts=[ToolReturnPart("lookup", "found it", tool_call_id="c1")]),
    ModelResponse(parts=[TextPart("answer one")]),
]
SETTINGS = ModelSettings(
    max_tokens=50,
    temperature=0.3,
    top_p=0.9,
    stop_sequences=["END"],
    seed=7,
    extra_body={"user": "u1", "metadata": {"k": "v"}},
    extra_headers={"X-Trace": "t1"},
)


@pytest.mark.parametrize("mode", MODES)
async def test_history_instructions_and_settings(parity: Parity, mode: str) -> None:
    kwargs: dict[str, Any] = {"history": HISTORY, "settings": SETTINGS}
    if mode == "stream":
        kwargs["instructions"] = "answer in French"
    pair = await parity("e?echo=1", MODES[mode](**kwargs))
    pair.assert_same()
    body = pair.lean_bodies[-1]
    roles = [m["role"] for m in body["messages"]]
    expected_roles = ["system", "user", "assistant", "tool", "assistant", "user"]
    if mode == "stream":
        expected_roles.insert(1, "system")
        assert body["messages"][1] == {"role": "system", "content": "answer in French"}
    assert roles == expected_roles
    assistant = next(m for m in body["messages"] if m["role"] == "assistant")
    assert assistant["content"] == "let me look"
    assert assistant["tool_calls"][0]["id"] == "c1"
    assert body["max_completion_tokens"] == 50
    assert (body["temperature"], body["top_p"], body["stop"], body["seed"]) == (0.3, 0.9, ["END"], 7)
    assert (body["user"], body["metadata"]) == ("u1", {"k": "v"})
    assert pair.lean.output == f"echo: hi there (messages: {len(roles)})"


async def test_profile_decides_the_max_tokens_field(mock: MockServer, models: ModelFactory) -> None:
    """Both honour the model profile: without `max_completion_tokens` support, `max_tokens` is sent."""
    profile = OpenAIModelProfile(openai_chat_supports_max_completion_tokens=False)
    bodies = []
    for kind in KINDS:
        mock.reset()
        model = models(kind, "m?chunks=2", mock.base_url, profile=profile)
        obs = await observe_stream(model, settings=ModelSettings(max_tokens=5))
        assert obs.output == "tok0 tok1"
        bodies.append(mock.stats.last_request_bodies[-1])
    assert bodies[0] == bodies[1]
    assert bodies[1]["max_tokens"] == 5
    assert "max_completion_tokens" not in bodies[1]
