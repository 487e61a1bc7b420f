"""The engine's refusals on HTTP: the one table from refusal type to status."""

from __future__ import annotations

from proxy.engine.refusals import (
    Draining,
    ForbiddenAgent,
    InvalidConversationId,
    InvalidField,
    InvalidMessages,
    InvalidPrompt,
    Overloaded,
    PromptTooLong,
    RateLimited,
    Refused,
    StateUnavailable,
    UnknownAgent,
    UnknownConversation,
    UnknownStream,
)
from proxy.errors import RequestError

HTTP_STATUS: dict[type[Refused], int] = {
    UnknownAgent: 404,
    InvalidPrompt: 422,
    InvalidMessages: 400,
    InvalidConversationId: 422,
    InvalidField: 400,
    PromptTooLong: 413,
    UnknownConversation: 404,
    UnknownStream: 404,
    ForbiddenAgent: 403,
    RateLimited: 429,
    Overloaded: 503,
    Draining: 503,
    StateUnavailable: 503,
}


def http_status(refusal: Refused) -> int:
    return HTTP_STATUS[type(refusal)]


def as_request_error(refusal: Refused) -> RequestError:
    """The refusal as the HTTP error a client of the proxy's own endpoints gets."""
    return RequestError(http_status(refusal), refusal.code, refusal.message, retry_after=refusal.retry_after)
