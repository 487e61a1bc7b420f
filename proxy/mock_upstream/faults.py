"""Which requests fault (`fault_times`, `fault_prob`, `seed`) and the OpenAI-style HTTP error answers."""

from __future__ import annotations

import random
from typing import Any, NamedTuple

from aiohttp import web

from proxy.mock_upstream.behaviour import MockBehaviour


class HttpFault(NamedTuple):
    status: int
    type: str
    code: str | None
    message: str


HTTP_FAULT_SPECS: dict[str, HttpFault] = {
    "http400": HttpFault(400, "invalid_request_error", None, "mock: invalid request"),
    "http401": HttpFault(401, "authentication_error", "invalid_api_key", "mock: incorrect API key provided"),
    "http403": HttpFault(403, "permission_error", None, "mock: permission denied"),
    "http404": HttpFault(404, "invalid_request_error", "model_not_found", "mock: the model does not exist"),
    "http408": HttpFault(408, "timeout", None, "mock: request timed out"),
    "http409": HttpFault(409, "conflict", None, "mock: conflict"),
    "http413": HttpFault(
        400, "invalid_request_error", "context_length_exceeded", "mock: maximum context length exceeded"
    ),
    "context_length": HttpFault(
        400, "invalid_request_error", "context_length_exceeded", "mock: maximum context length exceeded"
    ),
    "http429": HttpFault(429, "requests", "rate_limit_exceeded", "mock: rate limit reached"),
    "http500": HttpFault(500, "server_error", None, "mock: the server had an error"),
    "http502": HttpFault(502, "server_error", None, "mock: bad gateway"),
    "http503": HttpFault(503, "server_error", None, "mock: the engine is currently overloaded"),
    "http504": HttpFault(504, "server_error", None, "mock: gateway timeout"),
}


def error_payload(
    message: str, error_type: str, code: str | None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_response(
    status: int, message: str, error_type: str, code: str | None = None, param: str | None = None
) -> web.Response:
    """An OpenAI-style JSON error."""
    return web.json_response(error_payload(message, error_type, code, param), status=status)


def http_fault_response(fault: str, behaviour: MockBehaviour) -> web.Response:
    """The HTTP answer of an `httpNNN` fault, with `Retry-After` (and `retry-after-ms`) if asked."""
    spec = HTTP_FAULT_SPECS[fault]
    response = error_response(spec.status, spec.message, spec.type, spec.code)
    if behaviour.retry_after is not None:
        seconds = behaviour.retry_after
        response.headers["Retry-After"] = str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"
        response.headers["retry-after-ms"] = str(round(seconds * 1000))
    return response


class FaultSelector:
    """Decides per request whether its fault applies; counters and random sequences are per model string."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._rngs: dict[str, random.Random] = {}

    def select(self, key: str, behaviour: MockBehaviour) -> str | None:
        """The fault to inject into this request, or None.

        With `fault_every=N`, requests 1, N+1, 2N+1, ... with `key` fault and the others do not.
        Otherwise the first `fault_times` requests fault; after them (or without `fault_times`),
        `fault_prob` decides if given; with neither, every request faults.
        """
        fault = behaviour.fault
        if fault is None:
            return None
        seen = self._counts.get(key, 0)
        self._counts[key] = seen + 1
        if behaviour.fault_every is not None:
            return fault if seen % behaviour.fault_every == 0 else None
        times, prob = behaviour.fault_times, behaviour.fault_prob
        if times is None and prob is None:
            return fault
        if times is not None and seen < times:
            return fault
        if prob is not None:
            rng = self._rngs.get(key)
            if rng is None:
                rng = self._rngs[key] = random.Random(behaviour.seed)
            return fault if rng.random() < prob else None
        return None

    def reset(self) -> None:
        self._counts.clear()
        self._rngs.clear()
