"""OpenAI's error shape for the Chat Completions endpoint: request errors and engine refusals as
HTTP answers, and a failed stream's in-stream error chunk."""

from __future__ import annotations

import math

from aiohttp import web

from proxy.engine.refusals import InvalidField, InvalidMessages, PromptTooLong, Refused, UnknownAgent
from proxy.errors import RequestError
from proxy.events import Error
from proxy.transports.collect import error_status
from proxy.transports.refusals import http_status
from proxy.transports.wire import encode_json


class InvalidParam(RequestError):
    """A 400 about one request field, named in OpenAI's `param`."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(400, "invalid_request_error", message)
        self.param = param


def error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def openai_error(
    status: int, code: str, message: str, *, param: str | None = None, retry_after: float | None = None
) -> web.Response:
    body = {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}
    headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after is not None else None
    return web.Response(
        status=status, body=encode_json(body), content_type="application/json", headers=headers
    )


_REFUSAL_CODE: dict[type[Refused], str] = {UnknownAgent: "model_not_found"}
"""OpenAI's own code where it has one; otherwise the refusal's."""
_REFUSAL_PARAM: dict[type[Refused], str] = {
    UnknownAgent: "model",
    InvalidMessages: "messages",
    PromptTooLong: "messages",
}


def request_error_response(exc: RequestError | Refused) -> web.Response:
    """A request error or an engine refusal in OpenAI's shape."""
    if isinstance(exc, InvalidParam):
        return openai_error(400, "invalid_request_error", exc.message, param=exc.param)
    if isinstance(exc, InvalidField):
        return openai_error(400, "invalid_request_error", exc.message, param=exc.field)
    if isinstance(exc, Refused):
        kind = type(exc)
        return openai_error(
            http_status(exc),
            _REFUSAL_CODE.get(kind, exc.code),
            exc.message,
            param=_REFUSAL_PARAM.get(kind),
            retry_after=exc.retry_after,
        )
    return openai_error(exc.status, exc.code, exc.message, retry_after=exc.retry_after)


def error_chunk(error: Error) -> bytes:
    status = error_status(error.code)
    body = {
        "error": {"message": error.message, "type": error_type(status), "param": None, "code": error.code}
    }
    return b"data: %s\n\n" % encode_json(body)
