"""The lean model's HTTP side: cancellation closes the upstream response, connections are pooled and
reused, many streams share one session, headers, and the provider's lifecycle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic_ai import Agent, CancellationToken, PartDeltaEvent, PartStartEvent
from pydantic_ai.exceptions import RunCancelled
from pydantic_ai.messages import ModelResponse, TextPart
from pydantic_ai.settings import ModelSettings

from proxy.mock_upstream import MockBehaviour, MockServer, expected_text
from proxy.upstream import LeanOpenAIChatModel, LeanOpenAIProvider
from tests.upstream.conftest import KINDS, Kind, ModelFactory
from tests.upstream.observe import observe_stream

SLOW = "slow?chunks=50&gap_ms=20"


@pytest.mark.parametrize("kind", KINDS)
async def test_cancelling_the_consumer_closes_the_upstream_stream(
    mock: MockServer, models: ModelFactory, kind: Kind
) -> None:
    agent = Agent(models(kind, SLOW, mock.base_url))
    received = asyncio.Event()
    texts: list[str] = []

    async def consume() -> None:
        async with agent.run_stream_events("hi") as run:
            async for event in run:
                if isinstance(event, PartStartEvent | PartDeltaEvent):
                    texts.append(str(event))
                    if len(texts) == 3:
                        received.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(received.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await mock.stats.wait_for(lambda s: s.total.streams_closed_by_client == 1, timeout=1)
    assert mock.stats.total.streams_completed == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_run_cancel_closes_the_upstream_stream(
    mock: MockServer, models: ModelFactory, kind: Kind
) -> None:
    """pydantic-ai's own cancellation (the engine's `CancellationToken`) closes it too."""
    agent = Agent(models(kind, SLOW, mock.base_url))
    token = CancellationToken()

    async def consume() -> None:
        seen = 0
        async with agent.run_stream_events("hi", cancellation_token=token) as run:
            async for event in run:
                if isinstance(event, PartDeltaEvent):
                    seen += 1
                    if seen == 2:
                        token.cancel()

    with pytest.raises(RunCancelled) as caught:
        await consume()
    await mock.stats.wait_for(lambda s: s.total.streams_closed_by_client == 1, timeout=1)
    last = caught.value.all_messages()[-1]
    assert isinstance(last, ModelResponse)
    assert last.state == "interrupted"
    assert last.parts and isinstance(last.parts[0], TextPart)


@pytest.mark.parametrize("kind", KINDS)
async def test_breaking_out_closes_the_upstream_stream(
    mock: MockServer, models: ModelFactory, kind: Kind
) -> None:
    agent = Agent(models(kind, SLOW, mock.base_url))
    async with agent.run_stream_events("hi") as run:
        async for event in run:
            if isinstance(event, PartDeltaEvent):
                break
    await mock.stats.wait_for(lambda s: s.total.streams_closed_by_client == 1, timeout=1)


def _counting_trace() -> tuple[aiohttp.TraceConfig, dict[str, int]]:
    counts = {"created": 0, "reused": 0}
    trace = aiohttp.TraceConfig()

    async def created(*_: Any) -> None:
        counts["created"] += 1

    async def reused(*_: Any) -> None:
        counts["reused"] += 1

    trace.on_connection_create_end.append(created)
    trace.on_connection_reuseconn.append(reused)
    return trace, counts


async def test_connections_are_reused(mock: MockServer) -> None:
    trace, counts = _counting_trace()
    provider = LeanOpenAIProvider("mock", base_url=mock.base_url, api_key="k", trace_configs=[trace])
    try:
        model = LeanOpenAIChatModel("m?chunks=8", provider=provider)
        for _ in range(5):
            obs = await observe_stream(model)
            assert obs.output == expected_text(MockBehaviour(chunks=8))
        obs = await observe_stream(LeanOpenAIChatModel("f?fault=http500", provider=provider))
        assert obs.error is not None
        await observe_stream(model)
    finally:
        await provider.aclose()
    assert counts == {"created": 1, "reused": 6}


async def test_many_concurrent_streams_share_one_provider(mock: MockServer) -> None:
    trace, counts = _counting_trace()
    provider = LeanOpenAIProvider("mock", base_url=mock.base_url, api_key="k", trace_configs=[trace])
    try:
        model = LeanOpenAIChatModel("m?chunks=16&gap_ms=5", provider=provider)
        results = await asyncio.gather(*(observe_stream(model, f"prompt {i}") for i in range(60)))
    finally:
        await provider.aclose()
    assert {r.output for r in results} == {expected_text(MockBehaviour(chunks=16))}
    assert mock.stats.total.streams_completed == 60
    assert counts["created"] == 60  # more than aiohttp's default pool of 100 would allow at once, too


async def test_provider_lifecycle(mock: MockServer) -> None:
    """The session is created on first use and recreated after `aclose()`; `aclose()` twice is fine."""
    trace, counts = _counting_trace()
    provider = LeanOpenAIProvider("up", base_url=mock.base_url + "/", api_key=None, trace_configs=[trace])
    await provider.aclose()
    model = LeanOpenAIChatModel("m?chunks=2", provider=provider, settings=ModelSettings(max_retries=0))
    assert provider.base_url == mock.base_url + "/"
    assert model.system == "up"
    assert (await observe_stream(model)).output == "tok0 tok1"
    await provider.aclose()
    await provider.aclose()
    assert (await observe_stream(model)).output == "tok0 tok1"
    await provider.aclose()
    assert counts["created"] == 2
    assert mock.stats.last_authorization == "Bearer api-key-not-set"


@pytest.fixture
async def echo_headers() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """An upstream that records the request headers and answers one short streamed completion."""
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append({k.lower(): v for k, v in request.headers.items()})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk = b'data: {"id":"c","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"ok"},'
        await response.write(chunk + b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/v1", seen
    await runner.cleanup()


async def test_headers(models: ModelFactory, echo_headers: tuple[str, list[dict[str, str]]]) -> None:
    url, seen = echo_headers
    settings = ModelSettings(extra_headers={"X-Trace": "t1"})
    for kind in KINDS:
        obs = await observe_stream(models(kind, "m", url), settings=settings)
        assert obs.output == "ok"
    keys = ("authorization", "content-type", "accept", "user-agent", "x-trace")
    sdk, lean = ({k: h.get(k) for k in keys} for h in seen)
    assert lean == sdk
    assert lean["authorization"] == "Bearer sk-test"
    assert lean["user-agent"] is not None and lean["user-agent"].startswith("pydantic-ai/")


async def test_proxy_from_the_environment(
    mock: MockServer, models: ModelFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like the SDK's httpx client, the lean model sends through `HTTP_PROXY` (here: the mock itself)."""
    monkeypatch.setenv("HTTP_PROXY", mock.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    for kind in KINDS:
        obs = await observe_stream(models(kind, "m?chunks=3", "http://upstream.invalid/v1"))
        assert obs.output == "tok0 tok1 tok2", kind
    assert mock.stats.total.streams_completed == 2
    monkeypatch.setenv("NO_PROXY", "upstream.invalid")
    obs = await observe_stream(models("lean", "m?chunks=3", "http://upstream.invalid/v1"))
    assert obs.error is not None and obs.error["phase"] == "connect"
