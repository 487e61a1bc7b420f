"""A path the proxy does not serve gets JSON in its API's error shape, naming what was asked and
where the endpoints are listed (protocol.md 2.1); a served path's wrong method gets a JSON 405."""

from __future__ import annotations

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI

from proxy.mock_upstream import MockServer
from tests.auth.helpers import ALPHA, TOKEN_SECRET, TOKEN_SECRET_ENV, entry, keyed_settings
from tests.conftest import ProxyFactory, settings_for


async def test_an_unknown_path_names_itself_and_the_docs_in_the_proxys_shape(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    async with session.post(f"{proxy.url}/v1/agents/a/strem", json={"prompt": "x"}) as resp:
        assert resp.status == 404
        assert resp.content_type == "application/json"
        body = await resp.json()
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == "not_found"
    assert "POST /v1/agents/a/strem" in body["error"]["message"]
    assert "docs/protocol.md" in body["error"]["message"]
    assert mock.stats.total.requests == 0


async def test_the_openai_sdk_raises_not_found_for_an_endpoint_the_proxy_lacks(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    async with AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0) as client:
        with pytest.raises(openai.NotFoundError) as raised:
            await client.embeddings.create(model="a", input="hello")
    assert raised.value.status_code == 404
    assert raised.value.code == "not_found"
    assert isinstance(raised.value.body, dict) and raised.value.body["type"] == "invalid_request_error"
    assert "POST /v1/embeddings" in raised.value.message
    assert "docs/protocol.md" in raised.value.message


async def test_an_anthropic_path_gets_anthropics_error_shape(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    async with session.post(f"{proxy.url}/v1/messages/batches", json={}) as resp:
        assert resp.status == 404
        body = await resp.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "not_found_error"
    assert "POST /v1/messages/batches" in body["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "allowed", "keys"),
    [
        ("GET", "/v1/chat/completions", "POST", {"message", "type", "param", "code"}),
        ("DELETE", "/v1/agents/a/stream", "GET, HEAD, POST", {"code", "message"}),
    ],
)
async def test_a_wrong_method_is_a_json_405_naming_the_methods_the_path_takes(
    mock: MockServer,
    make_proxy: ProxyFactory,
    session: aiohttp.ClientSession,
    method: str,
    path: str,
    allowed: str,
    keys: set[str],
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    async with session.request(method, proxy.url + path) as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == allowed
        body = await resp.json()
    assert set(body["error"]) == keys
    assert body["error"]["code"] == "method_not_allowed"
    assert f"{method} {path}: this path takes {allowed}" in body["error"]["message"]


async def test_the_playground_and_the_root_redirect_still_work(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m"}))
    async with session.get(f"{proxy.url}/", allow_redirects=False) as resp:
        assert resp.status == 302
        assert resp.headers["Location"] == "/playground"
    async with session.get(f"{proxy.url}/playground") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
    async with session.get(f"{proxy.url}/playground/nothing.js") as resp:
        assert resp.status == 404
        assert "GET /playground/nothing.js" in (await resp.json())["error"]["message"]


async def test_with_keys_an_unknown_path_is_404_with_or_without_a_key(
    mock: MockServer,
    make_proxy: ProxyFactory,
    session: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TOKEN_SECRET_ENV, TOKEN_SECRET)
    settings = keyed_settings(mock, {"a": "m"}, [entry("alpha", ALPHA)], token_secret_env=TOKEN_SECRET_ENV)
    proxy = await make_proxy(settings)
    for headers in ({}, {"Authorization": f"Bearer {ALPHA}"}):
        async with session.get(f"{proxy.url}/v1/nothing", headers=headers) as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["code"] == "not_found"
    async with session.post(f"{proxy.url}/v1/agents/a/run", json={"prompt": "x"}) as resp:
        assert resp.status == 401  # a path that exists still needs the key
