"""The OpenAI Agents SDK (openai-agents, pinned) through the Responses door, on its default model
class (`OpenAIResponsesModel`): a run that calls a function tool, and a streamed run."""

from __future__ import annotations

from agents import Agent, OpenAIProvider, OpenAIResponsesModel, RunConfig, Runner, function_tool
from openai import AsyncOpenAI
from openai.types.responses import ResponseTextDeltaEvent

from proxy.mock_upstream import MockServer
from tests.conftest import Proxy, ProxyFactory, settings_for
from tests.test_openai import upstream_body
from tests.test_responses import CALLS_WEATHER


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def run_config(proxy: Proxy) -> RunConfig:
    """The SDK's own provider on the proxy; its traces (which go to OpenAI by default) off."""
    client = AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
    return RunConfig(model_provider=OpenAIProvider(openai_client=client), tracing_disabled=True)


async def test_a_run_calls_the_clients_function_tool_and_answers_with_its_result(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"assistant": CALLS_WEATHER}))
    agent = Agent(name="weather", instructions="Use the tool.", model="assistant", tools=[get_weather])
    config = run_config(proxy)
    assert isinstance(config.model_provider.get_model("assistant"), OpenAIResponsesModel)
    result = await Runner.run(agent, "weather in Paris?", run_config=config)
    assert result.final_output.endswith("(tool result: sunny in Paris)")
    sent = upstream_body(mock)["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]
    assert sent[0]["content"] == "Use the tool."  # the SDK agent's instructions
    await proxy.engine.wait_idle(2)


async def test_a_streamed_run_yields_the_text_deltas(mock: MockServer, make_proxy: ProxyFactory) -> None:
    proxy = await make_proxy(settings_for(mock, {"assistant": "m?chunks=4"}))
    agent = Agent(name="plain", model="assistant")
    result = Runner.run_streamed(agent, "hi", run_config=run_config(proxy))
    deltas = [
        event.data.delta
        async for event in result.stream_events()
        if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent)
    ]
    assert deltas == ["tok0", " tok1", " tok2", " tok3"]
    assert result.final_output == "tok0 tok1 tok2 tok3"
    await proxy.engine.wait_idle(2)
