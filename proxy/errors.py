"""Errors a transport answers with before a stream starts (bad JSON, wrong media type, ...).

The engine's own refusals are `proxy.engine.refusals`; they carry no HTTP status.
"""

from __future__ import annotations


class RequestError(Exception):
    """A request refused before streaming: `status` and a snake_case `code` for the wire."""

    def __init__(self, status: int, code: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
