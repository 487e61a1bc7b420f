"""The aiohttp server the transports run on: its HTTP parser limits, and JSON answers to requests
that cannot be parsed.

A `GET` stream's prompt travels in the request line, so the line may be far longer than aiohttp's
8190-byte default. Past the limits aiohttp itself would answer a plain-text HTTP/1.0 400 and log the
start of the offending line (the prompt) at ERROR with a traceback; here the client gets the
proxy's JSON error (414, 431, or 400 for any other unparsable request) and the log one INFO line
without request text.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from proxy.errors import RequestError
from proxy.transports.http import error_response

MAX_REQUEST_LINE_BYTES = 65536
"""Longest request line (method, path, query): 414 `url_too_long` above."""
MAX_HEADER_BYTES = 16384
"""Longest header, name and value: 431 `header_too_large` above."""
SERVER_HEADER = {"Server": "agent-proxy"}
"""Instead of aiohttp's `Python/3.x aiohttp/3.x`: versions help an attacker more than a client."""

log = logging.getLogger("agent_proxy")


def _refusal(exc: HttpProcessingError, max_line_size: int) -> RequestError:
    if isinstance(exc, LineTooLong):
        # aiohttp reports both limits with one exception type; the limit it names tells them apart.
        if exc.args[1] == max_line_size:
            return RequestError(
                414,
                "url_too_long",
                f"the request line is over {MAX_REQUEST_LINE_BYTES} bytes; send long prompts in a POST body",
            )
        return RequestError(431, "header_too_large", f"a header is over {MAX_HEADER_BYTES} bytes")
    return RequestError(400, "bad_request", "the request is not valid HTTP/1.1")


class _Handler(RequestHandler):
    """aiohttp's connection handler, answering requests it cannot parse in the proxy's JSON.

    aiohttp offers no hook for these answers: they are made in `handle_error`, before any
    middleware or signal runs, for a request whose headers were never read (so CORS can only allow
    any origin, when configured to)."""

    def __init__(self, manager: web.Server, *, error_headers: dict[str, str], **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._error_headers = error_headers

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        refusal = _refusal(exc, self.max_line_size)
        log.info("refused an unparsable request: %d %s", refusal.status, refusal.code)
        response = error_response(refusal)
        response.headers.update(self._error_headers)
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)


class ProxyRunner(web.AppRunner):
    """An AppRunner whose connections use `_Handler`, with the proxy's parser limits."""

    def __init__(self, app: web.Application, *, allow_any_origin: bool, **kwargs: Any) -> None:
        error_headers = dict(SERVER_HEADER)
        if allow_any_origin:
            error_headers["Access-Control-Allow-Origin"] = "*"
        super().__init__(
            app,
            handler_cancellation=True,
            max_line_size=MAX_REQUEST_LINE_BYTES,
            max_field_size=MAX_HEADER_BYTES,
            error_headers=error_headers,
            **kwargs,
        )

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # AppRunner builds a plain `web.Server`, which makes plain RequestHandlers; this is the one
        # place to choose the handler class without copying aiohttp's start-up sequence.
        server.__class__ = _Server
        return server
