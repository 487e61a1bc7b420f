"""Collecting a stream to its end for a non-streaming answer (`/run`, OpenAI with `stream: false`),
and the one mapping from a stream's error code to that answer's HTTP status."""

from __future__ import annotations

from collections.abc import AsyncIterator

from proxy.events import End, Error, Event
from proxy.observability.observer import Observer, StreamContext
from proxy.transports.pump import pump

_STATUS_BY_CODE = {
    "upstream_rate_limited": 429,
    "context_too_long": 400,
    "content_filter": 400,
    "tool_name_conflict": 400,
    "shutdown": 503,
    "draining": 503,
    "cancelled": 503,
    "internal_error": 500,
}


def error_status(code: str) -> int:
    """HTTP status of a non-streaming answer whose stream ended with error `code`.

    504 for timeouts, 429 when the upstream rate-limits us, 400 when the client's own input cannot be
    served (context too long, content filtered, a tool name conflict), 503 for shutdown, 500 for our
    own bugs, and 502 for every other upstream failure (`upstream_*`, malformed, incomplete, ...).
    An upstream's other 400s (`upstream_bad_request`) are 502 too: the client's request was valid for
    the proxy, and a 400 would tell it to change what it sends.
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
    if end.finish_reason in ("stop", "length", "tool_calls"):
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


async def collect(
    events: AsyncIterator[Event], ctx: StreamContext, observer: Observer
) -> tuple[End, Error | None]:
    """Run a stream to its `end` without writing anything (no heartbeats: nothing is on the wire
    yet); the `end`, and the error the stream failed with (None when it succeeded)."""
    collected = Collector()
    end = await pump(events, collected, ctx, observer, heartbeat_interval=None)
    assert end is not None  # a collecting send never loses its client; a cancel is raised
    return end, stream_error(end, collected.error)
