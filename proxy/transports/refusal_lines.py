"""The refusal log on HTTP: one middleware sees every 4xx the proxy answers, whichever endpoint and
error shape answered it, and hands it to `RefusalLog` (rate-limited there)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from proxy.observability.refusal_log import Refusal, RefusalLog
from proxy.transports.http import CALLER

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUESTED_AGENT: Final = web.RequestKey("requested_agent", str)
"""The agent a request names in its body (`model` on the API doors): set by the handlers that parse
it, so that a refusal's line can name it."""
REFUSAL_REASON: Final = web.RequestKey("refusal_reason", str)
"""Why a request was refused, finer than its code (the auth failure's reason)."""
_MAX_NAME_CHARS: Final = 200
"""Paths and agent names are the client's text: quote only their start."""


def _code(response: web.StreamResponse) -> str:
    """The error's code, from any of the error shapes (the proxy's and OpenAI's `error.code`,
    Anthropic's `error.type`)."""
    body = response.body if isinstance(response, web.Response) else None
    if isinstance(body, bytes):
        try:
            error = orjson.loads(body).get("error")
        except (orjson.JSONDecodeError, AttributeError):
            error = None
        if isinstance(error, dict):
            code = error.get("code") or error.get("type")
            if isinstance(code, str):
                return code[:_MAX_NAME_CHARS]
    return f"http_{response.status}"


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else request.path[:_MAX_NAME_CHARS]


def refusal_lines(refusals: RefusalLog) -> Middleware:
    """The middleware; it goes first, to see the answers the other middlewares make (401, 404)."""

    @web.middleware
    async def log_refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if 400 <= response.status < 500:
            code = _code(response)
            if refusals.admits(code):
                caller = request.get(CALLER)
                agent = request.match_info.get("agent") or request.get(REQUESTED_AGENT)
                refusals.write(
                    Refusal(
                        status=response.status,
                        code=code,
                        reason=request.get(REFUSAL_REASON),
                        method=request.method,
                        route=_route(request),
                        key=caller.identity.name if caller is not None else None,
                        agent=agent[:_MAX_NAME_CHARS] if agent is not None else None,
                    )
                )
        return response

    return log_refusals
