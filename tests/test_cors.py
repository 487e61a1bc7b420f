"""Browser clients on another origin: preflight and CORS headers, streams included."""

from __future__ import annotations

import aiohttp

from proxy.mock_upstream import MockServer
from tests.conftest import ProxyFactory, settings_for
from tests.support import read_sse

APP = "http://app.example:3000"


async def test_allowed_origin_gets_cors_headers_on_streams_and_preflights(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=2"}, server={"cors_allow_origins": [APP]}))
    url = f"{proxy.url}/v1/agents/a/stream"
    async with session.get(url, params={"prompt": "hi"}, headers={"Origin": APP}) as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == APP
        assert (await read_sse(resp)).types()[-1] == "end"
    preflight = {
        "Origin": APP,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    async with session.options(url, headers=preflight) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == APP
        assert "POST" in resp.headers["Access-Control-Allow-Methods"]
        assert "content-type" in resp.headers["Access-Control-Allow-Headers"].lower()


async def test_other_origins_get_no_cors_headers(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=2"}, server={"cors_allow_origins": [APP]}))
    async with session.get(
        f"{proxy.url}/v1/agents/a/stream", params={"prompt": "hi"}, headers={"Origin": "http://evil.example"}
    ) as resp:
        assert "Access-Control-Allow-Origin" not in resp.headers
        await resp.read()


OPENAI_NODE_SDK_HEADERS = (
    "authorization, content-type, x-stainless-arch, x-stainless-lang, x-stainless-os, "
    "x-stainless-package-version, x-stainless-retry-count, x-stainless-runtime, "
    "x-stainless-runtime-version, x-stainless-timeout"
)


async def test_preflight_of_the_openai_node_sdk_allows_the_headers_it_asks_for(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=2"}, server={"cors_allow_origins": [APP]}))
    preflight = {
        "Origin": APP,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": OPENAI_NODE_SDK_HEADERS,
    }
    async with session.options(f"{proxy.url}/v1/chat/completions", headers=preflight) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == APP
        allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert allowed >= {h.strip() for h in OPENAI_NODE_SDK_HEADERS.split(",")}
    # Another origin's preflight gets no permission at all.
    async with session.options(
        f"{proxy.url}/v1/chat/completions", headers={**preflight, "Origin": "http://evil.example"}
    ) as resp:
        assert "Access-Control-Allow-Headers" not in resp.headers
        assert "Access-Control-Allow-Origin" not in resp.headers
