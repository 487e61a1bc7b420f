"""Non-streaming runs (DESIGN 2): `POST /v1/agents/{agent}/run` answers one JSON object with the
fields of the `end` event, plus `error` when the stream failed.

The run goes through the same `pump` as every streaming transport (so metrics, traces and logs see
it like any other stream); its `send` only keeps what the answer needs. Also home of `error_status`,
the one mapping from a stream's error code to the HTTP status of a non-streaming answer, shared with
the OpenAI-compatible endpoint.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from proxy.engine import Engine
from proxy.events import End, Error, Event
from proxy.observability.observer import Observer
from proxy.transports.http import ARRIVED_AT, read_json_object, stream_context
from proxy.transports.pump import pump
from proxy.transports.wire import encode_json

_STATUS_BY_CODE = {
    "upstream_rate_limited": 429,
    "context_too_long": 400,
    "upstream_bad_request": 400,
    "content_filter": 400,
    "shutdown": 503,
    "draining": 503,
    "cancelled": 503,
    "internal_error": 500,
}


def error_status(code: str) -> int:
    """HTTP status of a non-streaming answer whose stream ended with error `code`.

    504 for timeouts, 429 when the upstream rate-limits us, 400 when the request itself cannot be
    served (context too long, refused by the upstream as bad), 503 for shutdown, 500 for our own
    bugs, and 502 for every other upstream failure (`upstream_*`, malformed, incomplete, ...).
    """
    status = _STATUS_BY_CODE.get(code)
    if status is not None:
        return status
    if code.endswith("_timeout"):
        return 504
    return 502


def stream_error(end: End, error: Error | None) -> Error | None:
    """The error a finished stream failed with: its `error` event, or one made up for an `end` that
    stopped early without one (shutdown, cancelled); None when the stream succeeded."""
    if error is not None:
        return error
    if end.finish_reason in ("stop", "length"):
        return None
    return Error(
        stream_id=end.stream_id,
        code=end.finish_reason,
        message=f"the stream ended early ({end.finish_reason}) before the answer was complete",
        retryable=end.finish_reason in ("shutdown", "timeout"),
    )


class Collector:
    """A `send` for `pump` that writes nothing and keeps the stream's `error` and `end` events."""

    def __init__(self) -> None:
        self.error: Error | None = None
        self.end: End | None = None

    async def __call__(self, event: Event) -> None:
        if isinstance(event, Error):
            self.error = event
        elif isinstance(event, End):
            self.end = event


class RunTransport:
    def __init__(self, engine: Engine, observer: Observer) -> None:
        self._engine = engine
        self._observer = observer

    async def post(self, request: web.Request) -> web.Response:
        agent = request.match_info["agent"]
        self._engine.check_agent(agent)
        body = await read_json_object(request)
        stream = self._engine.open(
            agent, body.get("prompt"), body.get("conversation_id"), arrived_at=request.get(ARRIVED_AT)
        )
        collected = Collector()
        ctx = stream_context(request, stream.id, agent, "run")
        end = await pump(stream, collected, ctx, self._observer, heartbeat_interval=None)
        if end is None:  # pragma: no cover - a collecting send never loses its client
            raise web.HTTPServiceUnavailable()
        answer: dict[str, Any] = end.to_dict()
        del answer["type"], answer["seq"]
        status = 200
        failed = stream_error(end, collected.error)
        if failed is not None:
            answer["error"] = {"code": failed.code, "message": failed.message, "retryable": failed.retryable}
            status = error_status(failed.code)
        return web.Response(body=encode_json(answer), status=status, content_type="application/json")
