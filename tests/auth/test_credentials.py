"""Credentials (DESIGN 9): keys in headers, 401 everywhere but the probes, tokens only where listed."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI

from proxy.auth.middleware import AUTH
from proxy.mock_upstream import MockServer
from tests.auth.helpers import ALPHA, BETA, TOKEN_SECRET, TOKEN_SECRET_ENV, bearer, entry, keyed_settings
from tests.conftest import Proxy, ProxyFactory
from tests.support import read_sse

AGENTS = {"a": "m?chunks=3", "b": "n?chunks=2"}
HI: list[Any] = [{"role": "user", "content": "hi"}]
# Every endpoint of DESIGN 2 that needs a credential, with a body it would accept.
PROTECTED: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/v1/agents/a/stream", {"prompt": "hi"}),
    ("GET", "/v1/agents/a/stream?prompt=hi", None),
    ("GET", "/v1/ws", None),
    ("POST", "/v1/agents/a/run", {"prompt": "hi"}),
    ("POST", "/v1/chat/completions", {"model": "a", "messages": HI}),
    ("GET", "/v1/models", None),
    ("GET", "/v1/agents", None),
    ("POST", "/v1/tokens", {}),
    ("GET", "/v1/streams/str_x", None),
]


@pytest.fixture
async def proxy(mock: MockServer, make_proxy: ProxyFactory, monkeypatch: pytest.MonkeyPatch) -> Proxy:
    monkeypatch.setenv(TOKEN_SECRET_ENV, TOKEN_SECRET)
    return await make_proxy(
        keyed_settings(
            mock,
            AGENTS,
            [entry("alpha", ALPHA), entry("beta", BETA, agents=["b"])],
            token_secret_env=TOKEN_SECRET_ENV,
        )
    )


async def token_for(session: aiohttp.ClientSession, proxy: Proxy, key: str = ALPHA, **body: Any) -> str:
    async with session.post(f"{proxy.url}/v1/tokens", json=body, headers=bearer(key)) as resp:
        assert resp.status == 200, await resp.text()
        answer = await resp.json()
    assert set(answer) == {"token", "expires_at"}
    token: str = answer["token"]
    return token


def assert_unauthorized(status: int, headers: Any, body: Any) -> None:
    assert status == 401
    assert headers["WWW-Authenticate"] == "Bearer"
    assert body["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED, ids=[f"{m} {p}" for m, p, _ in PROTECTED])
@pytest.mark.parametrize("credential", [None, "apk_wrong", f"{ALPHA}x"], ids=["none", "unknown", "near-miss"])
async def test_every_endpoint_refuses_a_missing_or_wrong_key_with_401(
    proxy: Proxy,
    session: aiohttp.ClientSession,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    credential: str | None,
) -> None:
    headers = bearer(credential) if credential else {}
    async with session.request(method, proxy.url + path, json=body, headers=headers) as resp:
        assert_unauthorized(resp.status, resp.headers, await resp.json())
    assert not proxy.engine.active


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
async def test_probes_and_metrics_need_no_key(
    proxy: Proxy, session: aiohttp.ClientSession, path: str
) -> None:
    async with session.get(proxy.url + path) as resp:
        assert resp.status == 200


@pytest.mark.parametrize("header", ["Authorization", "x-api-key"])
async def test_a_key_in_either_header_streams(
    proxy: Proxy, session: aiohttp.ClientSession, header: str
) -> None:
    value = f"Bearer {ALPHA}" if header == "Authorization" else ALPHA
    async with session.post(
        f"{proxy.url}/v1/agents/a/stream", json={"prompt": "hi"}, headers={header: value}
    ) as resp:
        result = await read_sse(resp)
    assert result.status == 200
    assert result.end["finish_reason"] == "stop"


async def test_the_openai_sdk_works_with_the_key_as_api_key(proxy: Proxy) -> None:
    async with AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key=ALPHA, max_retries=0) as client:
        answer = await client.chat.completions.create(model="a", messages=HI)
        assert answer.choices[0].message.content == "tok0 tok1 tok2"
        stream = await client.chat.completions.create(model="a", messages=HI, stream=True)
        assert [c async for c in stream]
    async with AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key="apk_wrong", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            await client.chat.completions.create(model="a", messages=HI)
        assert caught.value.code == "unauthorized"
        with pytest.raises(openai.AuthenticationError):
            await client.models.list()
        # The Responses door's refusals are OpenAI's shape too: `type` is only in OpenAI's.
        for call in (client.responses.create(model="a", input="hi"), client.responses.retrieve("resp_1")):
            with pytest.raises(openai.AuthenticationError) as caught:
                await call
            assert (caught.value.code, caught.value.type) == ("unauthorized", "authentication_error")


async def test_websocket_upgrade_without_a_credential_is_refused_before_the_upgrade(
    proxy: Proxy, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await session.ws_connect(f"{proxy.url}/v1/ws")
    assert caught.value.status == 401
    async with session.ws_connect(f"{proxy.url}/v1/ws", headers=bearer(ALPHA)) as ws:
        await ws.send_json({"type": "ping"})
        assert await ws.receive_json(timeout=5) == {"type": "pong"}


async def test_a_token_works_in_the_url_of_the_get_stream_and_the_websocket(
    proxy: Proxy, session: aiohttp.ClientSession
) -> None:
    token = await token_for(session, proxy)
    async with session.get(
        f"{proxy.url}/v1/agents/a/stream", params={"prompt": "hi", "token": token}
    ) as resp:
        result = await read_sse(resp)
    assert result.status == 200
    assert result.end["finish_reason"] == "stop"
    async with session.ws_connect(f"{proxy.url}/v1/ws", params={"token": token}) as ws:
        await ws.send_json({"type": "prompt", "request_id": "r1", "agent": "a", "prompt": "hi"})
        while (frame := await ws.receive_json(timeout=10))["type"] != "end":
            pass
        assert frame["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/agents/a/stream"),
        ("POST", "/v1/agents/a/run"),
        ("GET", "/v1/agents"),
        ("POST", "/v1/tokens"),
    ],
)
async def test_a_token_is_refused_where_only_keys_are_accepted(
    proxy: Proxy, session: aiohttp.ClientSession, method: str, path: str
) -> None:
    token = await token_for(session, proxy)
    url = proxy.url + path
    async with session.request(method, url, json={"prompt": "hi"}, params={"token": token}) as resp:
        assert_unauthorized(resp.status, resp.headers, await resp.json())
    async with session.request(method, url, json={"prompt": "hi"}, headers=bearer(token)) as resp:
        assert_unauthorized(resp.status, resp.headers, await resp.json())


@pytest.mark.parametrize("param", ["token", "api_key"])
async def test_a_key_in_a_url_is_refused(proxy: Proxy, session: aiohttp.ClientSession, param: str) -> None:
    for path in ("/v1/agents/a/stream", "/v1/ws"):
        async with session.get(proxy.url + path, params={"prompt": "hi", param: ALPHA}) as resp:
            body = await resp.json()
            assert_unauthorized(resp.status, resp.headers, body)
            assert "URL" in body["error"]["message"]
    # Even next to a valid header: the key has leaked into a URL and must not be accepted.
    async with session.get(
        f"{proxy.url}/v1/agents/a/stream", params={"prompt": "hi", param: ALPHA}, headers=bearer(ALPHA)
    ) as resp:
        assert resp.status == 401


async def test_an_expired_or_forged_token_is_refused(proxy: Proxy, session: aiohttp.ClientSession) -> None:
    token = await token_for(session, proxy, ttl_s=60)
    url = f"{proxy.url}/v1/agents/a/stream"
    payload, _, signature = token.partition(".")
    forged = [
        f"{payload}.{signature[:-2]}AA",
        f"{payload[:-2]}AA.{signature}",
        "apt_x.y",
        "apt_",
        "apt_" + "A" * 5000,
        "not-a-token",
    ]
    for bad in forged:
        async with session.get(url, params={"prompt": "hi", "token": bad}) as resp:
            assert_unauthorized(resp.status, resp.headers, await resp.json())
    signer = proxy.app[AUTH].signer
    now = signer.clock()
    signer.clock = lambda: now + 61
    async with session.get(url, params={"prompt": "hi", "token": token}) as resp:
        body = await resp.json()
        assert_unauthorized(resp.status, resp.headers, body)
        assert "expired" in body["error"]["message"]


async def test_a_token_of_another_secret_is_refused(
    proxy: Proxy, session: aiohttp.ClientSession, mock: MockServer, make_proxy: ProxyFactory
) -> None:
    other = await make_proxy(keyed_settings(mock, AGENTS, [entry("alpha", ALPHA)]))  # random secret
    token = await token_for(session, other)
    async with session.get(
        f"{proxy.url}/v1/agents/a/stream", params={"prompt": "hi", "token": token}
    ) as resp:
        assert resp.status == 401


async def test_a_token_bound_to_an_agent_is_refused_for_another(
    proxy: Proxy, session: aiohttp.ClientSession
) -> None:
    token = await token_for(session, proxy, agent="a")
    async with session.get(
        f"{proxy.url}/v1/agents/b/stream", params={"prompt": "hi", "token": token}
    ) as resp:
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "forbidden_agent"
    async with session.get(
        f"{proxy.url}/v1/agents/a/stream", params={"prompt": "hi", "token": token}
    ) as resp:
        assert (await read_sse(resp)).end["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"ttl_s": 3601}, 422, "invalid_body"),
        ({"ttl_s": 0}, 422, "invalid_body"),
        ({"ttl_s": "60"}, 422, "invalid_body"),
        ({"agent": 3}, 422, "invalid_body"),
        ({"agent": "nope"}, 404, "unknown_agent"),
    ],
)
async def test_bad_token_requests_get_a_clear_4xx(
    proxy: Proxy, session: aiohttp.ClientSession, body: dict[str, Any], status: int, code: str
) -> None:
    async with session.post(f"{proxy.url}/v1/tokens", json=body, headers=bearer(ALPHA)) as resp:
        assert resp.status == status
        assert (await resp.json())["error"]["code"] == code


async def test_a_key_cannot_mint_a_token_for_an_agent_it_may_not_use(
    proxy: Proxy, session: aiohttp.ClientSession
) -> None:
    async with session.post(f"{proxy.url}/v1/tokens", json={"agent": "a"}, headers=bearer(BETA)) as resp:
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "forbidden_agent"


async def test_a_token_lasts_its_ttl(proxy: Proxy, session: aiohttp.ClientSession) -> None:
    now = proxy.app[AUTH].signer.clock()
    async with session.post(f"{proxy.url}/v1/tokens", headers=bearer(ALPHA)) as resp:
        default = await resp.json()
    async with session.post(f"{proxy.url}/v1/tokens", json={"ttl_s": 3600}, headers=bearer(ALPHA)) as resp:
        longest = await resp.json()
    assert 299 <= default["expires_at"] - now <= 301
    assert 3599 <= longest["expires_at"] - now <= 3601


@pytest.mark.parametrize(
    "credential",
    [b"Authorization: Bearer \xff\xfe\x00x", b"x-api-key: \xc3\x28", b"Authorization: Bearer apt_\xff.\xfe"],
)
async def test_credentials_that_are_not_utf8_get_401_not_500(proxy: Proxy, credential: bytes) -> None:
    host, port = proxy.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"GET /v1/agents/a/stream?prompt=hi HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        + credential
        + b"\r\n\r\n"
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert status_line.split()[1] in (b"400", b"401"), status_line


@pytest.mark.parametrize(
    "token", ["%FF%FE", "apt_%FF.%FE", "apt_\u00e9\u00e9.\u2603", "apt_" + "=" * 10 + "."]
)
async def test_odd_tokens_in_the_url_get_401(
    proxy: Proxy, session: aiohttp.ClientSession, token: str
) -> None:
    async with session.get(f"{proxy.url}/v1/agents/a/stream?prompt=hi&token={token}") as resp:
        assert resp.status == 401
