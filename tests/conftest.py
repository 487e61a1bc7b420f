"""Fixtures: the mock upstream and the proxy, each on a free port of 127.0.0.1, in this process."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import values as prometheus_values

from proxy.agents import build_registry
from proxy.app import ENGINE, create_app
from proxy.config import Settings
from proxy.conversations import MemoryConversationStore
from proxy.engine import Engine
from proxy.engine.runtime import AgentRegistry
from proxy.mock_upstream import MockServer, start_mock
from proxy.transports.server import ProxyRunner
from tests.redis_server import RedisServer


@dataclass
class Proxy:
    url: str
    app: web.Application
    runner: web.AppRunner

    @property
    def engine(self) -> Engine:
        return self.app[ENGINE]

    @property
    def conversations(self) -> MemoryConversationStore:
        store = self.engine.store
        assert isinstance(store, MemoryConversationStore)
        return store


def settings_for(mock: MockServer, agents: dict[str, Any], **sections: Any) -> Settings:
    """Settings whose upstream `mock` is the test's mock; agent models are mock model strings."""
    return Settings(
        upstreams={"mock": {"base_url": mock.base_url}},
        agents={
            name: (
                {"model": f"mock:{spec}"}
                if isinstance(spec, str)
                else {**spec, "model": f"mock:{spec['model']}"}
            )
            for name, spec in agents.items()
        },
        **sections,
    )


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_state(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The `[state]` section of a Redis-backed proxy, with a key prefix of this test's own; the URL
    is in the environment variable the section names, as in production."""
    monkeypatch.setenv("AGENT_PROXY_REDIS_URL", redis_server.url)
    return {"backend": "redis", "key_prefix": redis_server.prefix(), "lease_ttl_s": 1.0}


@pytest.fixture
def blackhole_url() -> Iterator[str]:
    """A port whose listen queue is full: SYNs beyond the backlog go unanswered, connects time out."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    yield f"http://127.0.0.1:{port}/v1"
    for s in [*fillers, server]:
        s.close()


@pytest.fixture(autouse=True)
def isolated_metrics_mode(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts and ends in prometheus-client's in-memory mode: a test that switches this
    process to multiprocess mode (as `serve --workers` does) must not leak it into later apps."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    value_class = prometheus_values.ValueClass
    yield
    prometheus_values.ValueClass = value_class


@pytest.fixture(params=["direct", "agent_loop"])
def attempt_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test on both attempt paths: text agents take the direct model stream, and here also
    the agent loop that agents with tools or structured output take (`proxy/engine/attempt.py`)."""
    if request.param == "agent_loop":

        def agent_loop_registry(*args: Any, **kwargs: Any) -> AgentRegistry:
            registry = build_registry(*args, **kwargs)
            for runtime in registry.agents.values():
                runtime.direct = False
            return registry

        monkeypatch.setattr("proxy.app.build_registry", agent_loop_registry)
    return str(request.param)


@pytest.fixture
async def mock() -> AsyncIterator[MockServer]:
    server = await start_mock()
    yield server
    await server.close()


ProxyFactory = Callable[..., Awaitable[Proxy]]


@pytest.fixture
async def make_proxy() -> AsyncIterator[ProxyFactory]:
    runners: list[web.AppRunner] = []

    async def make(settings: Settings) -> Proxy:
        app = await create_app(settings)
        runner = ProxyRunner(app, allow_any_origin="*" in settings.server.cors_allow_origins)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return Proxy(f"http://127.0.0.1:{port}", app, runner)

    yield make
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        yield s


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll a cheap in-process condition that has no event of its own (e.g. the set of all tasks)."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def no_pending_tasks(timeout: float = 5.0) -> None:
    """Every task but this test's own has finished."""
    me = asyncio.current_task()

    def only_me() -> bool:
        return all(t is me or t.done() or _is_infrastructure(t) for t in asyncio.all_tasks())

    await wait_until(only_me, timeout)


async def assert_refused(
    session: aiohttp.ClientSession,
    proxy: Proxy,
    mock: MockServer,
    path: str,
    body: Any,
    status: int,
    code: str,
) -> None:
    """POST `body` to `path`: a `status` with the proxy's JSON error `code`, and nothing started (no
    upstream request, no stream, no task left)."""
    async with session.post(f"{proxy.url}{path}", json=body) as resp:
        assert resp.status == status, await resp.text()
        assert (await resp.json())["error"]["code"] == code
    assert mock.stats.total.requests == 0
    assert not proxy.engine.active
    await no_pending_tasks()


def _is_infrastructure(task: asyncio.Task[Any]) -> bool:
    # aiohttp's servers keep one task per open keep-alive connection; those are not streams.
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", "")
    return name.startswith(("RequestHandler.", "BaseProtocol.", "WebSocketResponse._"))
