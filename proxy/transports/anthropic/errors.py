"""Anthropic's error shape for the Messages endpoints, in one table: request errors, engine
refusals and stream failures -> the HTTP status and `error.type` that Anthropic's clients react to.

Claude Code and the SDKs retry 429 (after `retry-after`), 529 and other 5xx by themselves and give up
on 4xx, so the status says what to do: 529 `overloaded_error` when the proxy or the upstream is out
of capacity (a full proxy, a drain, an upstream that rate-limits or fails after the proxy's own
retries), 504 `timeout_error` for deadlines, 500 `api_error` for the rest of the upstream's failures
and our own bugs, 4xx for what the client must change.
"""

from __future__ import annotations

import math
from typing import Final

from aiohttp import web

from proxy.engine.refusals import Refused
from proxy.errors import RequestError
from proxy.events import Error
from proxy.transports.collect import error_status
from proxy.transports.refusals import http_status
from proxy.transports.wire import encode_json

TYPES: Final[dict[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
"""Anthropic's error type of each status it answers with."""
_AS_ANTHROPIC: Final[dict[int, int]] = {415: 400, 422: 400, 502: 500, 503: 529}
"""The proxy's statuses that Anthropic does not use -> the one its clients treat the same way."""
_FAILURE_STATUS: Final[dict[str, int]] = {"upstream_rate_limited": 529, "upstream_unavailable": 529}
"""Stream failures whose status is not the proxy's own (`error_status`): an upstream that is still
rate-limited or down after the proxy's retries is Anthropic's overloaded, which clients retry later."""


class InvalidRequest(RequestError):
    """A 400 about one request field, named in the message as `param: …`."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(400, "invalid_request_error", f"{param}: {message}")


def status_of(status: int) -> int:
    return _AS_ANTHROPIC.get(status, status)


def error_type(status: int) -> str:
    return TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def _body(status: int, message: str) -> bytes:
    return encode_json({"type": "error", "error": {"type": error_type(status), "message": message}})


def anthropic_error(status: int, message: str, *, retry_after: float | None = None) -> web.Response:
    status = status_of(status)
    headers = {"retry-after": str(max(1, math.ceil(retry_after)))} if retry_after is not None else None
    return web.Response(
        status=status, body=_body(status, message), content_type="application/json", headers=headers
    )


def request_error_response(exc: RequestError | Refused) -> web.Response:
    """A request error or an engine refusal in Anthropic's shape."""
    status = http_status(exc) if isinstance(exc, Refused) else exc.status
    return anthropic_error(status, exc.message, retry_after=exc.retry_after)


def failure_status(code: str) -> int:
    """The status of a non-streaming answer whose stream failed with `code`."""
    return _FAILURE_STATUS.get(code) or status_of(error_status(code))


def failure_response(error: Error) -> web.Response:
    status = failure_status(error.code)
    return anthropic_error(status, error.message, retry_after=1 if status in (429, 529) else None)


def error_event(error: Error) -> bytes:
    """The `error` event that ends a stream that failed after it started."""
    return b"event: error\ndata: %s\n\n" % _body(failure_status(error.code), error.message)
