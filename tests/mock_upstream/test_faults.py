"""Fault injection as clients see it: HTTP errors, cut/stalled/broken streams, and fault selection."""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from openai import AsyncOpenAI

from proxy.mock_upstream import MockServer, closed_port_url

from .sse import USER, Streamed, chat_body, read_stream, stream_chat


async def _post(
    session: aiohttp.ClientSession, mock: MockServer, model: str, **extra: Any
) -> tuple[int, Any]:
    async with session.post(f"{mock.base_url}/chat/completions", json=chat_body(model, **extra)) as response:
        raw = await response.read()
        return response.status, raw


@pytest.mark.parametrize(
    ("fault", "status", "error_type", "code"),
    [
        ("http400", 400, "invalid_request_error", None),
        ("http401", 401, "authentication_error", "invalid_api_key"),
        ("http404", 404, "invalid_request_error", "model_not_found"),
        ("http413", 400, "invalid_request_error", "context_length_exceeded"),
        ("context_length", 400, "invalid_request_error", "context_length_exceeded"),
        ("http429", 429, "requests", "rate_limit_exceeded"),
        ("http500", 500, "server_error", None),
        ("http503", 503, "server_error", None),
    ],
)
async def test_http_faults(
    session: aiohttp.ClientSession,
    mock: MockServer,
    fault: str,
    status: int,
    error_type: str,
    code: str | None,
) -> None:
    async with session.post(
        f"{mock.base_url}/chat/completions", json=chat_body(f"f?fault={fault}")
    ) as response:
        assert response.status == status
        assert "Retry-After" not in response.headers
        error = (await response.json())["error"]
    assert (error["type"], error["code"]) == (error_type, code)
    assert error["message"]
    assert mock.stats.total.faults_injected == 1
    assert mock.stats.total.streams_started == 0


@pytest.mark.parametrize(("seconds", "header", "ms"), [("2", "2", "2000"), ("0.25", "0.25", "250")])
async def test_retry_after(
    session: aiohttp.ClientSession, mock: MockServer, seconds: str, header: str, ms: str
) -> None:
    async with session.post(
        f"{mock.base_url}/chat/completions", json=chat_body(f"rl?fault=http429&retry_after={seconds}")
    ) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == header
        assert response.headers["retry-after-ms"] == ms


@pytest.mark.parametrize(
    ("fault", "exc"),
    [
        ("http429", openai.RateLimitError),
        ("http500", openai.InternalServerError),
        ("http401", openai.AuthenticationError),
        ("http404", openai.NotFoundError),
        ("context_length", openai.BadRequestError),
    ],
)
async def test_openai_sdk_error_classes(
    client: AsyncOpenAI, fault: str, exc: type[openai.APIStatusError]
) -> None:
    with pytest.raises(exc) as info:
        await client.chat.completions.create(model=f"e?fault={fault}", messages=USER, stream=True)
    if fault == "context_length":
        assert info.value.code == "context_length_exceeded"


async def test_fault_times_clears_after_k(session: aiohttp.ClientSession, mock: MockServer) -> None:
    model = "flaky?fault=http500&fault_times=2"
    statuses = [(await _post(session, mock, model))[0] for _ in range(4)]
    assert statuses == [500, 500, 200, 200]


async def test_fault_every_faults_every_nth_request_starting_with_the_first(
    session: aiohttp.ClientSession, mock: MockServer
) -> None:
    model = "alt?fault=http429&fault_every=2"
    statuses = [(await _post(session, mock, model))[0] for _ in range(5)]
    assert statuses == [429, 200, 429, 200, 429]


async def test_fault_times_counted_per_model_string(session: aiohttp.ClientSession, mock: MockServer) -> None:
    a, b = "a?fault=http503&fault_times=1", "b?fault=http503&fault_times=1"
    assert [(await _post(session, mock, m))[0] for m in (a, b, a, b)] == [503, 503, 200, 200]
    assert mock.stats.for_model(a).faults_injected == 1
    assert mock.stats.for_model(a).requests == 2
    mock.reset()  # `POST /_mock/reset` does the same
    assert (await _post(session, mock, a))[0] == 503


async def test_fault_prob_with_seed_is_reproducible(session: aiohttp.ClientSession, mock: MockServer) -> None:
    model = "p?fault=http500&fault_prob=0.5&seed=42"
    rng = random.Random(42)
    expected = [500 if rng.random() < 0.5 else 200 for _ in range(20)]
    got = [(await _post(session, mock, model, stream=False))[0] for _ in range(20)]
    assert got == expected
    assert 0 < got.count(500) < 20
    assert mock.stats.total.faults_injected == got.count(500)


async def test_drop_after_n_chunks(session: aiohttp.ClientSession, mock: MockServer) -> None:
    out = Streamed(0, {}, time.perf_counter(), 0.0)
    async with session.post(
        f"{mock.base_url}/chat/completions", json=chat_body("d?fault=drop&after=2")
    ) as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await read_stream(response, out)
    assert out.contents == ["tok0", " tok1"]
    assert not out.done
    await mock.stats.wait_for(lambda s: s.total.streams_faulted == 1 and s.total.active_streams == 0, 5)
    assert mock.stats.total.streams_closed_by_client == 0


async def test_drop_after_headers(session: aiohttp.ClientSession, mock: MockServer) -> None:
    out = Streamed(0, {}, time.perf_counter(), 0.0)
    async with session.post(f"{mock.base_url}/chat/completions", json=chat_body("d?fault=drop")) as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await read_stream(response, out)
    assert out.data == []


async def test_drop_headers(session: aiohttp.ClientSession, mock: MockServer, client: AsyncOpenAI) -> None:
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await _post(session, mock, "d?fault=drop_headers")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await _post(session, mock, "d?fault=drop_headers", stream=False)
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model="d?fault=drop_headers", messages=USER)


async def test_finite_stall_then_continues(session: aiohttp.ClientSession, mock: MockServer) -> None:
    out = await stream_chat(session, mock, "s?fault=stall&after=1&stall_ms=300&chunks=3")
    assert out.contents == ["tok0", " tok1", " tok2"]
    assert out.done
    assert out.times[1] - out.times[0] >= 0.29
    assert out.times[2] - out.times[1] < 0.1
    assert mock.stats.total.streams_completed == 1


async def test_endless_stall_until_client_gives_up(session: aiohttp.ClientSession, mock: MockServer) -> None:
    out = Streamed(0, {}, time.perf_counter(), 0.0)
    async with session.post(
        f"{mock.base_url}/chat/completions", json=chat_body("s?fault=stall&after=1")
    ) as response:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await read_stream(response, out)
        assert out.contents == ["tok0"]
        assert mock.stats.total.active_streams == 1
    # leaving the block closes the connection; the mock notices during its sleep
    await mock.stats.wait_for(lambda s: s.total.streams_closed_by_client == 1, 5)
    assert mock.stats.total.active_streams == 0


async def test_instream_error(session: aiohttp.ClientSession, mock: MockServer, client: AsyncOpenAI) -> None:
    out = await stream_chat(session, mock, "e?fault=instream_error&after=2")
    assert out.contents == ["tok0", " tok1"]
    assert not out.done
    error = json.loads(out.data[-1])["error"]
    assert error["type"] == "server_error"
    assert error["message"]
    assert "code" in error
    stream = await client.chat.completions.create(
        model="e?fault=instream_error&after=2", messages=USER, stream=True
    )
    seen: list[str] = []

    async def consume() -> None:
        async for chunk in stream:
            seen.append(chunk.choices[0].delta.content or "")

    with pytest.raises(openai.APIError):
        await consume()
    assert seen == ["tok0", " tok1"]


async def test_malformed_chunk(session: aiohttp.ClientSession, mock: MockServer) -> None:
    async with session.post(
        f"{mock.base_url}/chat/completions", json=chat_body("m?fault=malformed&after=3")
    ) as response:
        out = await read_stream(response, Streamed(200, {}, 0.0, 0.0))
    assert len(out.data) == 4
    assert [json.loads(d)["choices"][0]["delta"]["content"] for d in out.data[:3]] == [
        "tok0",
        " tok1",
        " tok2",
    ]
    with pytest.raises(json.JSONDecodeError):
        json.loads(out.data[3])
    await mock.stats.wait_for(lambda s: s.total.streams_faulted == 1, 5)


async def test_no_finish(session: aiohttp.ClientSession, mock: MockServer) -> None:
    out = await stream_chat(session, mock, "n?fault=no_finish&after=3")
    assert out.contents == ["tok0", " tok1", " tok2"]
    assert out.done
    assert out.finish_reasons == []
    assert all("usage" not in c for c in out.chunks)


async def test_fault_after_all_chunks_replaces_finish(
    session: aiohttp.ClientSession, mock: MockServer
) -> None:
    out = await stream_chat(session, mock, "n?fault=no_finish&after=100&chunks=2")
    assert out.contents == ["tok0", " tok1"]
    assert out.finish_reasons == []
    assert out.done


async def test_non_streaming_faults(session: aiohttp.ClientSession, mock: MockServer) -> None:
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await _post(session, mock, "x?fault=drop", stream=False)
    status, raw = await _post(session, mock, "x?fault=instream_error", stream=False)
    assert status == 500
    assert orjson.loads(raw)["error"]["type"] == "server_error"
    status, raw = await _post(session, mock, "x?fault=malformed", stream=False)
    assert status == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(raw)
    status, raw = await _post(session, mock, "x?fault=no_finish", stream=False)
    assert status == 200
    assert orjson.loads(raw)["choices"][0]["finish_reason"] is None
    started = time.perf_counter()
    status, raw = await _post(session, mock, "x?fault=stall&stall_ms=200", stream=False)
    assert status == 200
    assert time.perf_counter() - started >= 0.19


async def test_closed_port_refuses(session: aiohttp.ClientSession) -> None:
    url = closed_port_url()
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/v1")
    with pytest.raises(aiohttp.ClientConnectorError):
        await session.post(f"{url}/chat/completions", json=chat_body("m"))
    async with AsyncOpenAI(base_url=url, api_key="x", max_retries=0) as client:
        with pytest.raises(openai.APIConnectionError):
            await client.chat.completions.create(model="m", messages=USER)
