"""No key, token or key hash in anything the proxy emits: logs, metrics, spans, responses."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from openai import AsyncOpenAI

from proxy.mock_upstream import MockServer
from tests.auth.helpers import ALPHA, BETA, TOKEN_SECRET, TOKEN_SECRET_ENV, bearer, config_file
from tests.observability.test_export import FakeCollector, running_collector
from tests.serving import serve


@pytest.fixture
async def collector() -> AsyncIterator[FakeCollector]:
    async with running_collector() as fake:
        yield fake


class Recorder:
    """Every status line, header and body the clients received."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def keep(self, resp: aiohttp.ClientResponse) -> bytes:
        body = await resp.read()
        self.seen.append(f"{resp.status} {dict(resp.headers)} {body.decode(errors='replace')}")
        return body


async def traffic(session: aiohttp.ClientSession, url: str, rec: Recorder) -> None:
    async with session.post(f"{url}/v1/tokens", json={"agent": "a"}, headers=bearer(ALPHA)) as resp:
        token = (await resp.json())["token"]
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/agents/a/stream", {"json": {"prompt": "hi"}, "headers": bearer(ALPHA)}),
        ("GET", "/v1/agents/a/stream", {"params": {"prompt": "hi", "token": token}}),
        ("POST", "/v1/agents/a/run", {"json": {"prompt": "hi"}, "headers": {"x-api-key": ALPHA}}),
        ("POST", "/v1/agents/a/run", {"json": {"prompt": "hi"}, "headers": bearer(ALPHA)}),  # rate limited
        ("POST", "/v1/agents/a/run", {"json": {"prompt": "hi"}, "headers": bearer(BETA)}),  # forbidden agent
        ("POST", "/v1/agents/a/run", {"json": {"prompt": "hi"}, "headers": bearer(ALPHA + "x")}),
        ("GET", "/v1/agents/a/stream", {"params": {"prompt": "hi", "token": ALPHA}}),
        ("GET", "/v1/agents/a/stream", {"params": {"prompt": "hi", "api_key": BETA}}),
        ("GET", "/v1/agents/a/stream", {"params": {"prompt": "hi", "token": token[:-3] + "AAA"}}),
        ("POST", "/v1/agents/a/stream", {"json": {"prompt": "hi"}, "headers": bearer(token)}),
        ("GET", "/v1/models", {"headers": bearer(BETA)}),
        ("GET", "/v1/agents", {"headers": bearer(ALPHA)}),
    ]
    for method, path, kwargs in attempts:
        async with session.request(method, url + path, **kwargs) as resp:
            await rec.keep(resp)
    async with session.ws_connect(f"{url}/v1/ws", params={"token": token}) as ws:
        await ws.send_json({"type": "prompt", "request_id": "r1", "agent": "a", "prompt": "hi"})
        while True:  # alpha's window is spent by now: an `error` frame ends this request
            frame = await ws.receive_json(timeout=10)
            rec.seen.append(str(frame))
            if frame["type"] == "end" or (frame["type"] == "error" and frame["stream_id"] is None):
                break
    async with AsyncOpenAI(base_url=f"{url}/v1", api_key=BETA, max_retries=0) as client:
        answer = await client.chat.completions.create(model="b", messages=[{"role": "user", "content": "hi"}])
        rec.seen.append(answer.model_dump_json())


async def test_no_key_token_or_hash_appears_in_logs_metrics_spans_or_responses(
    tmp_path: Path, mock: MockServer, collector: FakeCollector, session: aiohttp.ClientSession
) -> None:
    hashes = [hashlib.sha256(k.encode()).hexdigest() for k in (ALPHA, BETA)]
    rest = f"""
[observability]
log_level = "DEBUG"
tracing = "on"
[auth]
mode = "keys"
token_secret_env = "{TOKEN_SECRET_ENV}"
[[auth.keys]]
name = "alpha"
sha256 = "{hashes[0]}"
limits = {{ requests_per_minute = 3 }}
[[auth.keys]]
name = "beta"
sha256 = "{hashes[1]}"
agents = ["b"]
"""
    config = config_file(tmp_path, mock, {"a": "m?chunks=3", "b": "n?chunks=2"}, rest)
    env = {TOKEN_SECRET_ENV: TOKEN_SECRET, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}
    rec = Recorder()
    async with serve("--config", str(config), env=env) as served:
        await traffic(session, served.url, rec)
        async with session.get(f"{served.url}/metrics") as resp:
            metrics = await resp.text()
        assert await served.stop() == 0
    spans = collector.spans()
    emitted = {
        "log": "".join(served.log),
        "metrics": metrics,
        "spans": "".join(str(span) for _, span in spans),
        "responses": "\n".join(rec.seen),
    }
    tokens = [line for line in rec.seen if "apt_" in line]
    assert not tokens, tokens  # the token itself was only ever in our request
    for where, text in emitted.items():
        for secret in (ALPHA, BETA, *hashes, TOKEN_SECRET):
            assert secret not in text, where
        assert "apt_" not in text, where
    # What they do show: the key's name.
    assert 'key="alpha"' in metrics and 'key="beta"' in metrics
    assert 'agent_proxy_rate_limited_total{key="alpha",limit="requests"} 2.0' in metrics  # run, ws
    assert 'agent_proxy_auth_failures_total{reason="key_in_url"} 2.0' in metrics
    assert '"key": "alpha"' in emitted["log"] or '"key":"alpha"' in emitted["log"]
    keys = {a.value.string_value for _, s in spans for a in s.attributes if a.key == "agent_proxy.key"}
    assert keys == {"alpha", "beta"}
