"""Errors a request can get before its stream starts, shared by the engine and every transport."""

from __future__ import annotations


class RequestError(Exception):
    """A request refused before streaming: `status` and a snake_case `code` for the wire."""

    def __init__(self, status: int, code: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
