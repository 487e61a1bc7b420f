"""Non-streaming runs: `POST /v1/agents/{agent}/run` answers one JSON object with the `end` fields."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from proxy.mock_upstream import MockServer
from tests.conftest import Proxy, ProxyFactory, settings_for

FAST_RETRY = {"backoff_initial_s": 0.01, "backoff_jitter_s": 0}

END_FIELDS = {
    "stream_id",
    "finish_reason",
    "text",
    "usage",
    "attempts",
    "model",
    "ttft_s",
    "duration_s",
    "conversation_id",
}


async def run(
    session: aiohttp.ClientSession, proxy: Proxy, agent: str = "a", **body: Any
) -> tuple[int, dict[str, Any]]:
    async with session.post(f"{proxy.url}/v1/agents/{agent}/run", json=body) as resp:
        assert resp.content_type == "application/json"
        return resp.status, await resp.json()


async def test_run_answers_the_end_fields(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=4"}))
    status, answer = await run(session, proxy, prompt="hello")
    assert status == 200
    assert set(answer) == END_FIELDS
    assert answer["stream_id"].startswith("str_")
    assert answer["finish_reason"] == "stop"
    assert answer["text"] == "tok0 tok1 tok2 tok3"
    assert answer["usage"] == {"input_tokens": 1, "output_tokens": 4, "requests": 1}
    assert answer["attempts"] == 1
    assert 0 < answer["ttft_s"] <= answer["duration_s"]
    assert isinstance(answer["conversation_id"], str)
    await proxy.engine.wait_idle(2)


async def test_run_retries_before_the_answer_invisibly(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(
        settings_for(mock, {"a": "m?chunks=2&fault=http503&fault_times=1"}, retry=FAST_RETRY)
    )
    status, answer = await run(session, proxy, prompt="hello")
    assert status == 200
    assert answer["text"] == "tok0 tok1"
    assert answer["attempts"] == 2
    await proxy.engine.wait_idle(2)


async def test_run_mid_stream_failure_restarts_by_default(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(
        settings_for(mock, {"a": "m?chunks=4&fault=drop&after=2&fault_times=1"}, retry=FAST_RETRY)
    )
    status, answer = await run(session, proxy, prompt="hello")
    assert status == 200
    assert answer["text"] == "tok0 tok1 tok2 tok3"  # the discarded first attempt leaves no trace
    assert answer["attempts"] == 2
    await proxy.engine.wait_idle(2)


FAILURES = [
    ("m?fault=http500", 502, "upstream_unavailable", True),
    ("m?fault=http429", 429, "upstream_rate_limited", True),
    ("m?fault=http400", 502, "upstream_bad_request", False),
    ("m?fault=context_length", 400, "context_too_long", False),
    ("m?fault=drop&after=1", 502, "upstream_dropped", True),
    ("m?ttfc_ms=3000", 504, "first_token_timeout", True),
]


@pytest.mark.parametrize(("model", "status", "code", "retryable"), FAILURES)
async def test_run_failure_has_the_mapped_status_and_an_error_field(
    mock: MockServer,
    make_proxy: ProxyFactory,
    session: aiohttp.ClientSession,
    model: str,
    status: int,
    code: str,
    retryable: bool,
) -> None:
    settings = settings_for(mock, {"a": model}, retry={"max_attempts": 1}, timeouts={"first_token_s": 0.2})
    proxy = await make_proxy(settings)
    got, answer = await run(session, proxy, prompt="hello")
    assert got == status
    assert set(answer) == END_FIELDS | {"error"}
    assert answer["error"]["code"] == code
    assert answer["error"]["retryable"] is retryable
    assert answer["error"]["message"]
    assert answer["finish_reason"] == ("timeout" if code.endswith("_timeout") else "error")
    assert answer["conversation_id"] is None  # a first turn that failed was not stored
    assert answer["attempts"] == 1
    await proxy.engine.wait_idle(2)


async def test_run_continues_a_conversation(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?echo=1"}))
    _, first = await run(session, proxy, prompt="first")
    assert first["text"] == "echo: first (messages: 1)"
    status, second = await run(session, proxy, prompt="second", conversation_id=first["conversation_id"])
    assert status == 200
    assert second["conversation_id"] == first["conversation_id"]
    assert second["text"] == "echo: second (messages: 3)"
    sent = mock.stats.last_request_bodies[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"] == first["text"]
    await proxy.engine.wait_idle(2)


async def test_run_cut_by_shutdown_answers_503(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=50&gap_ms=100"}))
    running = asyncio.create_task(run(session, proxy, prompt="hello"))
    await mock.stats.wait_for(lambda s: s.total.streams_started == 1, timeout=5)
    await proxy.engine.drain(0)
    status, answer = await running
    assert status == 503
    assert answer["finish_reason"] == "shutdown"
    assert answer["error"]["code"] == "shutdown"


BAD: list[tuple[str, str, dict[str, Any], int, str]] = [
    ("unknown agent", "nope", {"prompt": "x"}, 404, "unknown_agent"),
    ("missing prompt", "a", {}, 422, "invalid_prompt"),
    ("unknown conversation", "a", {"prompt": "x", "conversation_id": "c_nope"}, 404, "unknown_conversation"),
]


@pytest.mark.parametrize(("name", "agent", "body", "status", "code"), BAD, ids=[c[0] for c in BAD])
async def test_run_refused_before_it_starts_uses_the_proxy_error_shape(
    mock: MockServer,
    make_proxy: ProxyFactory,
    session: aiohttp.ClientSession,
    name: str,
    agent: str,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    got, answer = await run(session, proxy, agent, **body)
    assert got == status
    assert answer == {"error": {"code": code, "message": answer["error"]["message"]}}
    assert mock.stats.total.requests == 0
