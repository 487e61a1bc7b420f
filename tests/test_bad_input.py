"""Bad input gets a clear JSON 4xx, never a 500, and changes nothing (protocol.md 2)."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import pytest

from proxy.mock_upstream import MockServer
from proxy.transports.server import MAX_HEADER_BYTES, MAX_REQUEST_LINE_BYTES
from tests.conftest import ProxyFactory, settings_for
from tests.support import read_sse

JSON = {"Content-Type": "application/json"}

CASES: list[tuple[str, str, dict[str, Any], int, str]] = [
    # name, path, request kwargs, status, code
    ("malformed json", "/v1/agents/a/stream", {"data": b"{nope", "headers": JSON}, 400, "invalid_json"),
    ("not an object", "/v1/agents/a/stream", {"data": b"[1]", "headers": JSON}, 400, "invalid_body"),
    ("missing prompt", "/v1/agents/a/stream", {"json": {"conversation_id": None}}, 422, "invalid_prompt"),
    ("prompt not a string", "/v1/agents/a/stream", {"json": {"prompt": 42}}, 422, "invalid_prompt"),
    ("empty prompt", "/v1/agents/a/stream", {"json": {"prompt": "  "}}, 422, "invalid_prompt"),
    (
        "bad conversation id",
        "/v1/agents/a/stream",
        {"json": {"prompt": "x", "conversation_id": 7}},
        422,
        "invalid_conversation_id",
    ),
    ("unknown agent", "/v1/agents/nope/stream", {"json": {"prompt": "x"}}, 404, "unknown_agent"),
    (
        "wrong content type",
        "/v1/agents/a/stream",
        {"data": b"prompt=x", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        415,
        "unsupported_media_type",
    ),
    (
        "body over the limit",
        "/v1/agents/a/stream",
        {"data": b'{"prompt": "' + b"x" * 20_000 + b'"}', "headers": JSON},
        413,
        "body_too_large",
    ),
    (
        "prompt over the limit",
        "/v1/agents/a/stream",
        {"json": {"prompt": "x" * 3000}},
        413,
        "prompt_too_long",
    ),
    ("unknown path", "/v1/nothing", {"json": {}}, 404, "not_found"),
]


@pytest.mark.parametrize(("name", "path", "kwargs", "status", "code"), CASES, ids=[c[0] for c in CASES])
async def test_bad_post_is_refused_with_a_json_error(
    mock: MockServer,
    make_proxy: ProxyFactory,
    session: aiohttp.ClientSession,
    name: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    code: str,
) -> None:
    settings = settings_for(mock, {"a": "m"}, server={"max_body_bytes": 16_384, "max_prompt_chars": 2000})
    proxy = await make_proxy(settings)
    async with session.post(f"{proxy.url}{path}", **kwargs) as resp:
        assert resp.status == status
        assert resp.content_type == "application/json"
        body = await resp.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert mock.stats.total.requests == 0
    assert not proxy.engine.active
    assert len(proxy.conversations) == 0


async def test_get_without_prompt_is_a_422(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    async with session.get(f"{proxy.url}/v1/agents/a/stream") as resp:
        assert resp.status == 422
        assert (await resp.json())["error"]["code"] == "invalid_prompt"


async def test_wrong_method_is_a_405(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    async with session.delete(f"{proxy.url}/v1/agents/a/stream") as resp:
        assert resp.status == 405
        assert (await resp.json())["error"]["code"] == "method_not_allowed"


async def test_too_many_concurrent_streams_is_a_503_with_retry_after(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(
        settings_for(mock, {"a": "slow?ttfc_ms=60000"}, server={"max_concurrent_streams": 1})
    )
    async with session.post(f"{proxy.url}/v1/agents/a/stream", json={"prompt": "x"}) as first:
        assert first.status == 200
        async with session.post(f"{proxy.url}/v1/agents/a/stream", json={"prompt": "y"}) as second:
            assert second.status == 503
            assert second.headers["Retry-After"] == "1"
            assert (await second.json())["error"]["code"] == "overloaded"


async def test_long_get_prompts_pass_and_oversized_request_lines_and_headers_get_json_414_431(
    mock: MockServer,
    make_proxy: ProxyFactory,
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=2"}, server={"cors_allow_origins": ["*"]}))
    url = f"{proxy.url}/v1/agents/a/stream"
    origin = {"Origin": "http://app.example"}
    async with session.get(url, params={"prompt": "p" * 20_000}, headers=origin) as resp:
        assert resp.status == 200
        assert (await read_sse(resp)).types()[-1] == "end"
    secret = "secret-prompt-text"
    cases = [
        ({"prompt": secret * 5000}, {}, 414, "url_too_long", f"{MAX_REQUEST_LINE_BYTES} bytes"),
        ({"prompt": "hi"}, {"X-Big": secret * 1000}, 431, "header_too_large", f"{MAX_HEADER_BYTES} bytes"),
    ]
    for params, headers, status, code, limit in cases:
        async with session.get(url, params=params, headers={**origin, **headers}) as resp:
            assert resp.status == status
            assert resp.content_type == "application/json"
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
            error = (await resp.json())["error"]
        assert error["code"] == code
        assert limit in error["message"]
    assert mock.stats.total.requests == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in caplog.records if secret in r.getMessage() or secret in str(r.exc_info)]


async def test_responses_name_the_proxy_not_its_python_and_aiohttp_versions(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    for path in ("/healthz", "/v1/nothing"):
        async with session.get(f"{proxy.url}{path}") as resp:
            assert resp.headers["Server"] == "agent-proxy"
    async with session.get(f"{proxy.url}/healthz?q={'x' * 100_000}") as resp:
        assert resp.status == 414
        assert resp.headers["Server"] == "agent-proxy"


async def test_the_413_message_states_the_limit(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}, server={"max_body_bytes": 16_384}))
    body = b'{"prompt": "' + b"x" * 20_000 + b'"}'
    async with session.post(f"{proxy.url}/v1/agents/a/run", data=body, headers=JSON) as resp:
        assert resp.status == 413
        assert "16384 bytes" in (await resp.json())["error"]["message"]


@pytest.mark.parametrize("path", ["/v1/agents/a/stream", "/v1/agents/a/run"])
async def test_unknown_fields_are_a_422_naming_the_field(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession, path: str
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    async with session.post(f"{proxy.url}{path}", json={"prompt": "x", "promt_prefix": "y"}) as resp:
        assert resp.status == 422
        error = (await resp.json())["error"]
    assert error["code"] == "unknown_field"
    assert "promt_prefix" in error["message"]
    assert mock.stats.total.requests == 0
    async with session.post(f"{proxy.url}{path}", json={"prompt": "x", "metadata": {"k": "v"}}) as resp:
        assert resp.status == 200
        await resp.read()
