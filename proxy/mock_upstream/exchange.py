"""The one request handler every wire shares: read, count, fault, plan, then stream or answer."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from proxy.mock_upstream.answer import plan_answer
from proxy.mock_upstream.behaviour import HTTP_FAULTS, STREAM_FAULTS, BehaviourError, MockBehaviour
from proxy.mock_upstream.faults import FaultSelector
from proxy.mock_upstream.stats import MockStats, StreamOutcome
from proxy.mock_upstream.wires.base import Call, StreamEncoder, Wire, WireError

_MAX_CACHED_BEHAVIOURS = 4096


class MockState:
    """Per-app state: the defaults, parsed behaviours, fault selection, stats and request numbers."""

    def __init__(self, defaults: MockBehaviour, stats: MockStats) -> None:
        self.defaults = defaults
        self.stats = stats
        self.faults = FaultSelector()
        self._behaviours: dict[str, MockBehaviour] = {}
        self._numbers = itertools.count(1)

    def behaviour(self, model: str) -> MockBehaviour:
        found = self._behaviours.get(model)
        if found is None:
            found = MockBehaviour.from_model_name(model, self.defaults)
            if len(self._behaviours) >= _MAX_CACHED_BEHAVIOURS:
                self._behaviours.clear()
            self._behaviours[model] = found
        return found

    def next_number(self) -> int:
        return next(self._numbers)


STATE_KEY = web.AppKey("mock_upstream_state", MockState)


def _close_connection(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.close()


def handler(wire: Wire) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler of `wire`'s paths."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return await _handle(request, wire)

    return handle


async def _handle(request: web.Request, wire: Wire) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    stats = state.stats
    authorization = request.headers.get("Authorization")
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        stats.on_request(None, None, authorization)
        stats.on_bad_request(None)
        return wire.bad_request(f"mock: request body is not valid JSON: {exc}", None)
    model = wire.model(request, body)
    if not isinstance(model, str) or not model:
        stats.on_request(None, body if isinstance(body, dict) else None, authorization)
        stats.on_bad_request(None)
        return wire.bad_request("mock: 'model' (a string) is required", "model")
    stats.on_request(model, body if isinstance(body, dict) else None, authorization)
    try:
        behaviour = state.behaviour(model)
        prompt = wire.prompt(body)
    except BehaviourError as exc:
        stats.on_bad_request(model)
        return wire.bad_request(exc.message, exc.key, "invalid_mock_parameter")
    except WireError as exc:
        stats.on_bad_request(model)
        return wire.bad_request(exc.message, exc.param)

    fault = state.faults.select(model, behaviour)
    if fault is not None:
        stats.on_fault(model)
        if fault in HTTP_FAULTS:
            return wire.http_fault(fault, behaviour)
        if fault == "drop_headers":
            _close_connection(request)
            return web.Response()  # never reaches the client: the connection is closed

    call = Call(model, body, behaviour, plan_answer(behaviour, prompt), state.next_number(), int(time.time()))
    if wire.streaming(request, body):
        encoder = wire.stream(call)
        response = web.StreamResponse(headers=encoder.headers)
        await response.prepare(request)
        stats.on_stream_start(model)
        outcome: StreamOutcome = "closed_by_client"
        try:
            outcome = await _stream(request, response, encoder, behaviour, fault)
        except ConnectionError:
            pass  # the client went away: outcome stays "closed_by_client"
        finally:  # also on CancelledError (handler_cancellation=True notices a disconnect during a sleep)
            stats.on_stream_end(model, outcome)
        return response

    try:
        return await _complete(request, wire, call, fault)
    except asyncio.CancelledError:
        stats.on_response(model, completed=False)
        raise


async def _stream(
    request: web.Request,
    response: web.StreamResponse,
    encoder: StreamEncoder,
    behaviour: MockBehaviour,
    fault: str | None,
) -> StreamOutcome:
    start = encoder.start()  # first: encoders that number their events count from it
    chunks = encoder.pieces()
    if start:
        await response.write(start)
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
            else:
                if fault == "instream_error":
                    ending = encoder.error()
                elif fault == "malformed":
                    ending = encoder.malformed()
                else:
                    ending = encoder.unfinished()
                await response.write(ending)
                await response.write_eof()
                return "faulted"
        if i < len(chunks):
            await response.write(chunks[i])
    await response.write(encoder.finish())
    await response.write_eof()
    return "completed"


async def _complete(request: web.Request, wire: Wire, call: Call, fault: str | None) -> web.StreamResponse:
    behaviour = call.behaviour
    delay = behaviour.ttfc_ms / 1000 + (behaviour.stall_ms / 1000 if fault == "stall" else 0.0)
    if delay > 0:
        await asyncio.sleep(delay)
    if fault == "drop":
        _close_connection(request)
        return web.Response()
    if fault == "instream_error":
        return wire.failure()
    if fault == "malformed":
        return web.Response(body=wire.malformed_body, content_type="application/json")
    response = wire.complete(call, finished=fault != "no_finish")
    request.app[STATE_KEY].stats.on_response(call.model, completed=True)
    return response
