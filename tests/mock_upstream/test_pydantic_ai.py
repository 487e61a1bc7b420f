"""The mock's main client: pydantic-ai agents (text, tools, structured output, history) against it."""

from __future__ import annotations

import pytest
from pydantic import BaseModel
from pydantic_ai import Agent, NativeOutput
from pydantic_ai.exceptions import UnexpectedModelBehavior
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from proxy.mock_upstream import MockBehaviour, MockServer, expected_text


class City(BaseModel):
    name: str
    population: int


def _model(mock: MockServer, name: str) -> OpenAIChatModel:
    return OpenAIChatModel(name, provider=OpenAIProvider(base_url=mock.base_url, api_key="x"))


async def test_streamed_text_and_usage(mock: MockServer) -> None:
    agent = Agent(_model(mock, "mock?chunks=5"))
    async with agent.run_stream("hi there") as run:
        text = "".join([delta async for delta in run.stream_text(delta=True)])
    assert text == expected_text(MockBehaviour(chunks=5))
    assert run.usage.output_tokens == 5
    assert mock.stats.total.streams_completed == 1


async def test_tool_round_trip(mock: MockServer) -> None:
    agent = Agent(_model(mock, "t?tool=get_time&tool_args=%7B%22tz%22%3A%22UTC%22%7D"))

    @agent.tool_plain
    def get_time(tz: str) -> str:
        return f"noon in {tz}"

    result = await agent.run("what time is it?")
    assert result.output.endswith("(tool result: noon in UTC)")
    assert mock.stats.total.requests == 2


@pytest.mark.parametrize("output_type", [City, NativeOutput(City)])
async def test_structured_output(mock: MockServer, output_type: object) -> None:
    agent = Agent(_model(mock, "o?json_chunk=5"), output_type=output_type)  # type: ignore[call-overload]
    result = await agent.run("a city")
    assert isinstance(result.output, City)


async def test_invalid_forced_json_exhausts_retries(mock: MockServer) -> None:
    agent = Agent(_model(mock, "b?json=%7B%22name%22%3A1%7D"), output_type=City, retries=1)
    with pytest.raises(UnexpectedModelBehavior):
        await agent.run("a city")


async def test_history_reaches_upstream(mock: MockServer) -> None:
    agent = Agent(_model(mock, "e?echo=1"))
    first = await agent.run("first")
    second = await agent.run("second", message_history=first.all_messages())
    assert second.output == "echo: second (messages: 3)"
