"""Vercel AI's default OpenAI provider (`@ai-sdk/openai`, pinned; `provider("model")` speaks the
Responses API) through the proxy, from Node: text, streamed text, usage, and a failure it reports."""

from __future__ import annotations

from proxy.mock_upstream import MockServer
from tests.conftest import ProxyFactory, settings_for
from tests.js_clients import run_node


async def test_the_default_openai_provider_generates_and_streams_text(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=3"}))
    out = await run_node("vercel_ai_openai.mjs", {"baseURL": f"{proxy.url}/v1", "model": "a"})
    assert out["generated"]["text"] == "tok0 tok1 tok2"
    assert out["generated"]["finishReason"] == "stop"
    assert out["generated"]["usage"]["outputTokens"] == 3
    streamed = out["streamed"]
    assert streamed["deltas"] == ["tok0", " tok1", " tok2"] and streamed["errors"] == []
    assert streamed["finishReason"] == "stop" and streamed["usage"]["outputTokens"] == 3


async def test_a_failure_mid_stream_is_an_error_the_provider_reports_not_a_complete_answer(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(
        settings_for(mock, {"a": "m?chunks=4&fault=drop&after=2"}, retry={"max_attempts": 1})
    )
    out = await run_node("vercel_ai_openai.mjs", {"baseURL": f"{proxy.url}/v1", "model": "a"})
    assert "error" in out["generated"]
    streamed = out["streamed"]
    assert streamed["deltas"] == ["tok0", " tok1"]
    assert streamed["errors"] and streamed["finishReason"] == "error"
