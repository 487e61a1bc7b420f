"""What every wire client shares: the client interface, the protocol.md 3.1 event rules, error kinds."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from time import perf_counter
from typing import Any

import aiohttp
import orjson

from proxy.loadtest.config import LoadConfig
from proxy.loadtest.record import (
    BAD_PAYLOAD,
    CLIENT_ERROR,
    CONNECT,
    DISCONNECTED,
    TIMEOUT,
    TRUNCATED,
    RequestRecord,
)

# protocol.md 3.1: the events that carry content; TTFT and the gaps are measured on these only.
CONTENT_EVENTS = frozenset({"delta", "output"})
# Events whose JSON body we need to look at; every other event is timed without parsing it.
PARSED_EVENTS = frozenset({"error", "end", "retry", ""})
_CLEAN_FINISH = frozenset({"stop", "length", "tool_calls"})
# After `end`/`[DONE]`, how long to wait for the response's EOF so its connection can be reused.
_DRAIN_S = 1.0
_ERROR_BODY_BYTES = 4096


def classify(exc: BaseException, rec: RequestRecord) -> tuple[str, str]:
    """Map an exception raised while running a request to (error kind, message)."""
    msg = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"http_{exc.status}", msg
    if isinstance(exc, aiohttp.ClientConnectorError):
        return CONNECT, msg
    if isinstance(exc, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)):
        # Before a status line the server dropped the request; after it, the stream.
        return (DISCONNECTED if rec.status is None else TRUNCATED), msg
    if isinstance(exc, TimeoutError):
        return TIMEOUT, msg
    if isinstance(exc, ValueError):  # orjson.JSONDecodeError, SseError, UnicodeDecodeError
        return BAD_PAYLOAD, msg
    return CLIENT_ERROR, msg


def handle_event(rec: RequestRecord, etype: str, t: float, obj: Mapping[str, Any] | None) -> bool:
    """Apply one protocol.md 3.1 event that arrived at `t` to the record; True when it ended the stream.

    `obj` is the event's JSON; it may be None for events whose body is not needed (content,
    heartbeat, retry, start).
    """
    if etype in CONTENT_EVENTS:
        rec.content(t)
    elif etype == "heartbeat":
        rec.heartbeats += 1
    elif etype == "retry":
        rec.retries += 1
        if obj and obj.get("discard"):
            # Every content event so far is void; TTFT and the gaps still count them: they were seen.
            rec.discarded_chunks = rec.chunks
    elif etype == "error":
        body = obj or {}
        code = body.get("code")
        message = body.get("message")
        rec.fail(
            code if isinstance(code, str) and code else "stream_error",
            message if isinstance(message, str) else None,
        )
    elif etype == "end":
        body = obj or {}
        rec.ended = t
        usage = body.get("usage")
        if isinstance(usage, dict):
            rec.usage(usage.get("input_tokens"), usage.get("output_tokens"))
        reason = body.get("finish_reason")
        if isinstance(reason, str):
            rec.finish_reason = reason
            if reason not in _CLEAN_FINISH:
                rec.fail(f"finish_{reason}", f"stream ended with finish_reason {reason!r}")
        return True
    return False


class WireClient:
    """Runs one request and fills in its record. Transport failures are raised (the runner
    classifies them); protocol outcomes (HTTP status, stream errors, truncation) are recorded."""

    def __init__(self, config: LoadConfig, session: aiohttp.ClientSession) -> None:
        self.config = config
        self.session = session
        self.base = config.url.rstrip("/")

    def api_url(self, path: str) -> str:
        """`path` (`/v1/...`) on the server, whether `--url` was given with its `/v1` or without."""
        base = self.base.removesuffix("/v1")
        return f"{base}{path}"

    async def request(self, rec: RequestRecord, prompt: str) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Release what the requests left open (sockets, background tasks)."""


async def http_error(rec: RequestRecord, resp: aiohttp.ClientResponse) -> None:
    body = await resp.content.read(_ERROR_BODY_BYTES)
    rec.ended = perf_counter()
    message = body.decode("utf-8", "replace")
    with contextlib.suppress(ValueError):
        err = orjson.loads(body).get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            message = err["message"]
    rec.fail(f"http_{resp.status}", message)


async def drain(resp: aiohttp.ClientResponse) -> None:
    """Read to EOF after the stream's last event so aiohttp can reuse the connection."""
    if resp.content.at_eof():
        return
    with contextlib.suppress(TimeoutError, aiohttp.ClientError):
        async with asyncio.timeout(_DRAIN_S):
            while await resp.content.readany():
                pass
