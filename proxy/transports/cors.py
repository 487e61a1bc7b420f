"""CORS for browser clients (an `EventSource` or `fetch` on another origin), from configured origins."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ALLOW_HEADERS = "Content-Type, Authorization, traceparent, tracestate"
"""Allowed when a preflight names none; otherwise it gets the headers it asks for."""


def install_cors(app: web.Application, allowed: Sequence[str]) -> None:
    """Answer preflights and add `Access-Control-Allow-Origin` to every response (streams included:
    `on_response_prepare` runs before any response sends its headers)."""
    if not allowed:
        return
    allow_any = "*" in allowed
    origins = frozenset(allowed)

    def allow(request: web.Request) -> str | None:
        origin = request.headers.get("Origin")
        if origin is None or not (allow_any or origin in origins):
            return None
        return "*" if allow_any else origin

    @web.middleware
    async def preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
        is_preflight = request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
        if is_preflight and allow(request) is not None:
            # SDKs send headers of their own (the OpenAI SDKs' `x-stainless-*`, more each release);
            # an origin allowed to call the proxy may send any header, as a server-side client can.
            return web.Response(
                status=204,
                headers={
                    "Access-Control-Allow-Methods": "GET, POST",
                    "Access-Control-Allow-Headers": request.headers.get(
                        "Access-Control-Request-Headers", ALLOW_HEADERS
                    ),
                    "Access-Control-Max-Age": "600",
                },
            )
        return await handler(request)

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        origin = allow(request)
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin, Access-Control-Request-Headers"

    app.middlewares.insert(0, preflight)
    app.on_response_prepare.append(add_headers)
