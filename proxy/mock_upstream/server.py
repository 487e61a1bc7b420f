"""The aiohttp app (`create_app`): every wire's routes and the mock's own, and `start_mock` to run it."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from aiohttp import web

from proxy.mock_upstream.behaviour import MockBehaviour
from proxy.mock_upstream.exchange import STATE_KEY, MockState, handler
from proxy.mock_upstream.stats import MockStats
from proxy.mock_upstream.wires import WIRES
from proxy.mock_upstream.wires.base import json_response

PRESET_MODELS: tuple[str, ...] = (
    "mock",
    "demo?text=Hello+from+the+mock+upstream!",
    "slow?chunks=64&gap_ms=100",
    "echo?echo=1",
    "flaky?fault=http500&fault_times=2",
    "ratelimited?fault=http429&retry_after=1&fault_times=1",
)
STATS_KEY = web.AppKey("mock_upstream_stats", MockStats)


async def _models(request: web.Request) -> web.Response:
    created = 1700000000
    data = [{"id": name, "object": "model", "created": created, "owned_by": "mock"} for name in PRESET_MODELS]
    return json_response({"object": "list", "data": data})


async def _stats(request: web.Request) -> web.Response:
    return json_response(request.app[STATS_KEY].snapshot())


async def _reset(request: web.Request) -> web.Response:
    request.app[STATS_KEY].reset()
    request.app[STATE_KEY].faults.reset()
    return json_response({"ok": True})


async def _health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


def create_app(defaults: MockBehaviour | None = None) -> web.Application:
    """The mock's app; `app[STATS_KEY]` is its `MockStats`. Run it with `handler_cancellation=True`."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    stats = MockStats()
    app[STATS_KEY] = stats
    app[STATE_KEY] = MockState(defaults or MockBehaviour(), stats)
    for wire in WIRES:
        handle = handler(wire)
        for path in wire.paths:
            app.router.add_post(path, handle)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/_mock/stats", _stats)
    app.router.add_post("/_mock/reset", _reset)
    app.router.add_get("/health", _health)
    return app


@dataclass
class MockServer:
    """A running mock: `base_url` is what an OpenAI client takes (`http://host:port/v1`)."""

    runner: web.AppRunner
    host: str
    port: int

    @property
    def app(self) -> web.Application:
        return self.runner.app

    @property
    def stats(self) -> MockStats:
        return self.runner.app[STATS_KEY]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def reset(self) -> None:
        """Reset stats and fault counters (same as `POST /_mock/reset`)."""
        self.stats.reset()
        self.runner.app[STATE_KEY].faults.reset()

    async def close(self) -> None:
        await self.runner.cleanup()

    async def __aenter__(self) -> MockServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def start_mock(
    host: str = "127.0.0.1",
    port: int = 0,
    defaults: MockBehaviour | None = None,
    shutdown_timeout: float = 0.5,
    backlog: int = 4096,
) -> MockServer:
    """Start the mock on `host:port` (0 = a free port) in the running loop.

    `backlog` is large so that thousands of simultaneous connects (benchmarks) are not delayed by
    SYN retries; `shutdown_timeout` bounds how long `close()` waits for running streams."""
    runner = web.AppRunner(
        create_app(defaults), handler_cancellation=True, shutdown_timeout=shutdown_timeout, access_log=None
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=backlog)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = port
    for address in runner.addresses:
        if isinstance(address, tuple):
            bound = int(address[1])
            break
    return MockServer(runner, host, bound)


_closed_sockets: list[socket.socket] = []


def closed_port_url() -> str:
    """A base URL on 127.0.0.1 whose port refuses connections (bound, never listening, kept reserved)."""
    if not _closed_sockets:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        _closed_sockets.append(sock)
    port = _closed_sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
