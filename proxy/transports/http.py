"""HTTP plumbing shared by the transports: JSON errors, body parsing, stream set-up."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from proxy.auth.identity import Caller
from proxy.engine.refusals import Refused
from proxy.errors import RequestError
from proxy.observability.observer import ANONYMOUS_KEY, StreamContext, Transport
from proxy.transports.refusals import as_request_error

TRACE_HEADERS = ("traceparent", "tracestate")
ARRIVED_AT = web.RequestKey("arrived_at", float)
"""`time.monotonic()` when the request arrived, set by the app's first middleware."""
MAX_BODY_BYTES = web.AppKey("max_body_bytes", int)
"""The app's body size limit, for the 413 message (aiohttp keeps its own copy private)."""
STREAM_FIELDS = ("prompt", "conversation_id", "metadata")
"""The body fields of the proxy's own `stream` and `run` endpoints."""
CALLER = web.RequestKey("caller", Caller)
"""Who sent the request: set by the auth middleware (`proxy/auth/middleware.py`); absent with
`[auth] mode = "none"`, where every request is anonymous and unlimited."""


def error_response(error: RequestError | Refused) -> web.Response:
    if isinstance(error, Refused):
        error = as_request_error(error)
    headers = (
        {"Retry-After": str(max(1, round(error.retry_after)))} if error.retry_after is not None else None
    )
    body = orjson.dumps({"error": {"code": error.code, "message": error.message}})
    return web.Response(status=error.status, body=body, content_type="application/json", headers=headers)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body, or a RequestError (415, 413, 400)."""
    if request.content_type != "application/json":
        raise RequestError(415, "unsupported_media_type", "send the body as application/json")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        limit = request.config_dict[MAX_BODY_BYTES]
        raise RequestError(413, "body_too_large", f"the body is over {limit} bytes") from exc
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise RequestError(400, "invalid_body", "the body must be a JSON object")
    return body


def reject_unknown_fields(body: dict[str, Any], known: tuple[str, ...]) -> None:
    """A typo (`promt`) must not pass as an empty request: 422 naming the field."""
    unknown = [key for key in body if key not in known]
    if unknown:
        raise RequestError(
            422,
            "unknown_field",
            f"unknown field {', '.join(map(repr, unknown))}; the body takes {', '.join(known)}",
        )


def stream_context(
    request: web.Request, stream_id: str, agent: str, transport: Transport, arrived_at: float | None = None
) -> StreamContext:
    caller = request.get(CALLER)
    return StreamContext(
        stream_id=stream_id,
        agent=agent,
        transport=transport,
        key=caller.identity.name if caller is not None else ANONYMOUS_KEY,
        arrived_at=arrived_at if arrived_at is not None else request.get(ARRIVED_AT, time.monotonic()),
        trace_headers={h: request.headers[h] for h in TRACE_HEADERS if h in request.headers},
    )
