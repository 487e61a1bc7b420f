"""Fuzzing with hypothesis and schemathesis: arbitrary query strings, WebSocket frames and requests
generated from /openapi.json never make the proxy answer 500, leak a stream or drop a socket.
Bounded in `make test` (`FUZZ_EXAMPLES`, default 40 per test); `make fuzz` runs many more.

The proxy runs with keys in a thread of its own (hypothesis drives a synchronous test function),
and each example is one real request over a socket.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import values as prometheus_values
from schemathesis import Case

from proxy.app import ENGINE, create_app
from proxy.auth.keys import hash_key, new_key
from proxy.config import Settings
from proxy.mock_upstream import start_mock
from proxy.openapi import OPERATIONS, build_document

KEY = new_key()
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@dataclass
class Threaded:
    url: str
    loop: asyncio.AbstractEventLoop
    app: web.Application

    def run(self, coro: Any) -> Any:
        """Run a client coroutine on a loop of the test's own (not the proxy's)."""
        return asyncio.run(coro)

    def wait_idle(self) -> None:
        """Until the proxy runs no stream (TimeoutError after 5 s)."""
        asyncio.run_coroutine_threadsafe(self.app[ENGINE].wait_idle(5), self.loop).result(10)


@pytest.fixture(scope="module")
def proxy() -> Iterator[Threaded]:
    # Outlives the per-test metrics isolation of conftest.py: it must start in-memory mode itself.
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
        patch.setattr(prometheus_values, "ValueClass", prometheus_values.MutexValue)
        yield from _threaded_proxy()


def _threaded_proxy() -> Iterator[Threaded]:
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict[str, Any] = {}

    async def start() -> None:
        mock = await start_mock()
        settings_ = Settings(
            upstreams={"mock": {"base_url": mock.base_url}},
            agents={"a": {"model": "mock:m?chunks=2"}},
            auth={"mode": "keys", "keys": [{"name": "fuzz", "sha256": hash_key(KEY)}]},
        )
        app = await create_app(settings_)
        runner = web.AppRunner(app, handler_cancellation=True)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        box.update(mock=mock, runner=runner, app=app, url=f"http://127.0.0.1:{runner.addresses[0][1]}")

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(60)
    yield Threaded(box["url"], loop, box["app"])

    async def stop() -> None:
        await box["runner"].cleanup()
        await box["mock"].close()

    asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


query_text = st.text(st.characters(codec="utf-8"), max_size=40)
queries = st.dictionaries(
    st.one_of(st.sampled_from(["prompt", "token", "api_key", "conversation_id", "after"]), query_text),
    query_text,
    max_size=4,
)


@FUZZ
@given(query=queries, authorized=st.booleans(), path=st.sampled_from(["/v1/agents/a/stream", "/v1/ws"]))
def test_arbitrary_query_strings_never_cause_a_500(
    proxy: Threaded, query: dict[str, str], authorized: bool, path: str
) -> None:
    async def request() -> int:
        headers = {"Authorization": f"Bearer {KEY}"} if authorized else {}
        async with (
            aiohttp.ClientSession() as session,
            session.get(proxy.url + path, params=query, headers=headers) as resp,
        ):
            await resp.read()
            return resp.status

    status = proxy.run(request())
    assert status < 500 or status == 503, status


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
frames = st.one_of(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["prompt", "cancel", "ping", "resume", "other"])},
        optional={
            "request_id": json_values,
            "agent": st.one_of(st.just("a"), json_values),
            "prompt": json_values,
            "conversation_id": json_values,
        },
    ),
    json_values,
).map(json.dumps) | st.text(max_size=60)


@FUZZ
@given(sent=st.lists(frames, min_size=1, max_size=4))
def test_arbitrary_websocket_frames_get_answers_and_the_socket_stays_open(
    proxy: Threaded, sent: list[str]
) -> None:
    async def converse() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{proxy.url}/v1/ws", headers={"Authorization": f"Bearer {KEY}"}) as ws,
        ):
            for frame in sent:
                await ws.send_str(frame)
            await ws.send_str('{"type": "ping"}')
            while True:  # every answer is JSON; the socket answers the ping after all of them
                answer = orjson.loads((await ws.receive(timeout=10)).data)
                assert answer.get("code") != "internal_error", answer
                if answer == {"type": "pong"}:
                    return

    proxy.run(converse())


def test_no_stream_is_left_running_after_the_fuzzing(proxy: Threaded) -> None:
    proxy.wait_idle()


# Every operation of /openapi.json (but the WebSocket upgrade, fuzzed above), with bodies, paths and
# queries generated from its schemas, sent with a valid key: never a 500.
schema = schemathesis.openapi.from_dict(build_document(sorted(OPERATIONS), auth=True)).exclude(path="/v1/ws")


@schema.parametrize()
@settings(max_examples=max(5, EXAMPLES // 4), deadline=None, suppress_health_check=list(HealthCheck))
def test_schemathesis_finds_no_server_error(proxy: Threaded, case: Case[Any]) -> None:
    response = case.call(base_url=proxy.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    assert response.status_code < 500 or response.status_code == 503, (case.as_curl_command(), response.text)
