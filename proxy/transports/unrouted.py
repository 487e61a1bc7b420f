"""Requests no route takes: 404 for a path the proxy does not serve, 405 for a path it serves with
another method. The answer is JSON in the error shape of the API the path belongs to, so that an SDK
pointed at the proxy raises its own not-found error with a message that says what was asked and
where the endpoints are listed.

Which API a path belongs to is decided here alone, by its prefix: the proxy's own endpoints (and
everything outside `/v1/`) answer in the proxy's shape; Anthropic's (`/v1/messages`, `/v1/complete`)
in Anthropic's; every other `/v1/` path is taken for OpenAI's (`/v1/embeddings`, `/v1/chat/…`), whose
shape also carries the proxy's `code` and `message`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import orjson
from aiohttp import web

DOCS: Final = "the endpoints are listed in docs/protocol.md (section 2) and at GET /openapi.json"
_OWN_PREFIXES: Final = ("/v1/agents", "/v1/streams", "/v1/ws", "/v1/tokens", "/v1/usage")
_ANTHROPIC_PREFIXES: Final = ("/v1/messages", "/v1/complete")
_MAX_PATH_CHARS: Final = 200
"""A request line may be 64 KiB long: the message quotes the start of its path."""


def _proxy_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _openai_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


def _anthropic_body(code: str, message: str) -> dict[str, Any]:
    kind = "not_found_error" if code == "not_found" else "invalid_request_error"
    return {"type": "error", "error": {"type": kind, "message": message}}


def _shape(path: str) -> Callable[[str, str], dict[str, Any]]:
    if not path.startswith("/v1/") or path.startswith(_OWN_PREFIXES):
        return _proxy_body
    if path.startswith(_ANTHROPIC_PREFIXES):
        return _anthropic_body
    return _openai_body


def _quoted(path: str) -> str:
    return path if len(path) <= _MAX_PATH_CHARS else path[:_MAX_PATH_CHARS] + "…"


def unrouted_response(request: web.Request, exc: web.HTTPNotFound | web.HTTPMethodNotAllowed) -> web.Response:
    """The JSON answer for `exc`, raised by the router (or a handler) for `request`."""
    asked = f"{request.method} {_quoted(request.path)}"
    headers: dict[str, str] = {}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        headers["Allow"] = allowed
        code, message = "method_not_allowed", f"{asked}: this path takes {allowed}; {DOCS}"
    else:
        code, message = "not_found", f"no endpoint {asked}; {DOCS}"
    body = orjson.dumps(_shape(request.path)(code, message))
    return web.Response(
        status=exc.status, body=body, content_type="application/json", headers=headers or None
    )
