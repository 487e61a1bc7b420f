"""The aiohttp app (`create_app`), its request handlers, and `start_mock` to run it on a port."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from proxy.mock_upstream.answer import Answer, plan_answer
from proxy.mock_upstream.behaviour import HTTP_FAULTS, STREAM_FAULTS, BehaviourError, MockBehaviour
from proxy.mock_upstream.faults import FaultSelector, error_response, http_fault_response
from proxy.mock_upstream.stats import MockStats, StreamOutcome
from proxy.mock_upstream.stream import (
    DONE,
    MALFORMED,
    SSE_HEADERS,
    ChunkEncoder,
    completion_body,
    error_chunk,
    usage_dict,
)

PRESET_MODELS: tuple[str, ...] = (
    "mock",
    "demo?text=Hello+from+the+mock+upstream!",
    "slow?chunks=64&gap_ms=100",
    "echo?echo=1",
    "flaky?fault=http500&fault_times=2",
    "ratelimited?fault=http429&retry_after=1&fault_times=1",
)
_MAX_CACHED_BEHAVIOURS = 4096


class _State:
    """Per-app state: the defaults, parsed behaviours, fault selection and stats."""

    def __init__(self, defaults: MockBehaviour, stats: MockStats) -> None:
        self.defaults = defaults
        self.stats = stats
        self.faults = FaultSelector()
        self._behaviours: dict[str, MockBehaviour] = {}
        self._ids = itertools.count(1)

    def behaviour(self, model: str) -> MockBehaviour:
        found = self._behaviours.get(model)
        if found is None:
            found = MockBehaviour.from_model_name(model, self.defaults)
            if len(self._behaviours) >= _MAX_CACHED_BEHAVIOURS:
                self._behaviours.clear()
            self._behaviours[model] = found
        return found

    def next_id(self) -> str:
        return f"chatcmpl-mock{next(self._ids)}"


STATS_KEY = web.AppKey("mock_upstream_stats", MockStats)
_STATE_KEY = web.AppKey("mock_upstream_state", _State)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _close_connection(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.close()


async def _chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[_STATE_KEY]
    stats = state.stats
    authorization = request.headers.get("Authorization")
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        stats.on_request(None, None, authorization)
        stats.on_bad_request(None)
        return error_response(400, f"mock: request body is not valid JSON: {exc}", "invalid_request_error")
    model = body.get("model") if isinstance(body, dict) else None
    if not isinstance(model, str) or not model:
        stats.on_request(None, body if isinstance(body, dict) else None, authorization)
        stats.on_bad_request(None)
        return error_response(
            400, "mock: 'model' (a string) is required", "invalid_request_error", None, "model"
        )
    stats.on_request(model, body, authorization)
    try:
        behaviour = state.behaviour(model)
    except BehaviourError as exc:
        stats.on_bad_request(model)
        return error_response(400, exc.message, "invalid_request_error", "invalid_mock_parameter", exc.key)
    if not isinstance(body.get("messages"), list):
        stats.on_bad_request(model)
        return error_response(
            400, "mock: 'messages' must be a list", "invalid_request_error", None, "messages"
        )

    fault = state.faults.select(model, behaviour)
    if fault is not None:
        stats.on_fault(model)
        if fault in HTTP_FAULTS:
            return http_fault_response(fault, behaviour)
        if fault == "drop_headers":
            _close_connection(request)
            return web.Response()  # never reaches the client: the connection is closed

    answer = plan_answer(behaviour, body)
    completion_id = state.next_id()
    created = int(time.time())
    if body.get("stream") is True:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        encoder = ChunkEncoder(completion_id, created, model)
        response = web.StreamResponse(headers=SSE_HEADERS)
        await response.prepare(request)
        stats.on_stream_start(model)
        outcome: StreamOutcome = "closed_by_client"
        try:
            outcome = await _stream(request, response, encoder, behaviour, answer, fault, include_usage)
        except ConnectionError:
            pass  # the client went away: outcome stays "closed_by_client"
        finally:  # also on CancelledError (handler_cancellation=True notices a disconnect during a sleep)
            stats.on_stream_end(model, outcome)
        return response

    try:
        return await _complete(request, behaviour, answer, fault, completion_id, created, model)
    except asyncio.CancelledError:
        stats.on_response(model, completed=False)
        raise


async def _stream(
    request: web.Request,
    response: web.StreamResponse,
    encoder: ChunkEncoder,
    behaviour: MockBehaviour,
    answer: Answer,
    fault: str | None,
    include_usage: bool,
) -> StreamOutcome:
    chunks = encoder.pieces(answer)
    fault_at = min(behaviour.after, len(chunks)) if fault in STREAM_FAULTS else -1
    ttfc, gap = behaviour.ttfc_ms / 1000, behaviour.gap_ms / 1000
    for i in range(len(chunks) + 1):
        if i < len(chunks):
            delay = ttfc if i == 0 else gap
            if delay > 0:
                await asyncio.sleep(delay)
        if i == fault_at:
            if fault == "drop":
                _close_connection(request)
                return "faulted"
            if fault == "stall":
                await asyncio.sleep(behaviour.stall_ms / 1000)
            elif fault == "instream_error":
                await response.write(error_chunk("mock: injected in-stream error", "server_error"))
                await response.write_eof()
                return "faulted"
            elif fault == "malformed":
                await response.write(MALFORMED)
                await response.write_eof()
                return "faulted"
            elif fault == "no_finish":
                await response.write(DONE)
                await response.write_eof()
                return "faulted"
        if i < len(chunks):
            await response.write(chunks[i])
    tail = encoder.finish(answer.finish_reason)
    if include_usage and behaviour.usage:
        tail += encoder.usage(usage_dict(answer))
    await response.write(tail + DONE)
    await response.write_eof()
    return "completed"


async def _complete(
    request: web.Request,
    behaviour: MockBehaviour,
    answer: Answer,
    fault: str | None,
    completion_id: str,
    created: int,
    model: str,
) -> web.StreamResponse:
    stats = request.app[_STATE_KEY].stats
    delay = behaviour.ttfc_ms / 1000 + (behaviour.stall_ms / 1000 if fault == "stall" else 0.0)
    if delay > 0:
        await asyncio.sleep(delay)
    if fault == "drop":
        _close_connection(request)
        return web.Response()
    if fault == "instream_error":
        return error_response(500, "mock: injected error", "server_error", "server_error")
    if fault == "malformed":
        return web.Response(body=MALFORMED[6:], content_type="application/json")
    finish = None if fault == "no_finish" else answer.finish_reason
    data = completion_body(answer, completion_id, created, model, finish, behaviour.usage)
    stats.on_response(model, completed=True)
    return _json(data)


async def _models(request: web.Request) -> web.Response:
    created = 1700000000
    data = [{"id": name, "object": "model", "created": created, "owned_by": "mock"} for name in PRESET_MODELS]
    return _json({"object": "list", "data": data})


async def _stats(request: web.Request) -> web.Response:
    return _json(request.app[STATS_KEY].snapshot())


async def _reset(request: web.Request) -> web.Response:
    request.app[STATS_KEY].reset()
    request.app[_STATE_KEY].faults.reset()
    return _json({"ok": True})


async def _health(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


def create_app(defaults: MockBehaviour | None = None) -> web.Application:
    """The mock's app; `app[STATS_KEY]` is its `MockStats`. Run it with `handler_cancellation=True`."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    stats = MockStats()
    app[STATS_KEY] = stats
    app[_STATE_KEY] = _State(defaults or MockBehaviour(), stats)
    app.router.add_post("/v1/chat/completions", _chat_completions)
    app.router.add_post("/chat/completions", _chat_completions)
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
        self.runner.app[_STATE_KEY].faults.reset()

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
