"""What went wrong in an attempt, classified once: retried or not, and how it is named on the wire.

`reason` is the bounded label used in `retry` events and metrics; `code` is the `error.code` a
client sees when the stream fails for good; `error_type` labels `agent_proxy_upstream_errors_total`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic_ai.exceptions import (
    ContentFilterError,
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelContextWindowExceededError,
    ModelHTTPError,
    ModelNotFoundError,
    ModelRequestTimeout,
    ModelTimeoutError,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
)

from proxy.events import FinishReason

RETRYABLE_STATUS = frozenset({408, 409, 425, 429})


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str
    code: str
    error_type: str
    retryable: bool
    message: str
    retry_after: float | None = None
    finish_reason: FinishReason = "error"
    upstream_fault: bool = True
    """Whether it speaks about the upstream's health (counts towards its circuit breaker)."""


class AttemptFailed(Exception):
    """An attempt ended in `failure`; the original exception is the cause."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class AttemptTimeout(Exception):
    """The engine's own per-attempt or per-stream deadline ran out."""

    def __init__(self, kind: str, seconds: float) -> None:
        super().__init__(f"no {kind.replace('_', ' ')} within {seconds:g} s")
        self.kind = kind
        self.seconds = seconds


class IncompleteStream(Exception):
    """The upstream stream ended without a finish reason."""


def _caused_by_json_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, json.JSONDecodeError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _http_failure(exc: ModelHTTPError) -> Failure:
    status = exc.status_code
    message = f"upstream answered HTTP {status}: {exc.message}"
    if exc.in_stream:
        return Failure("in_stream_error", "upstream_stream_error", "in_stream", True, message)
    if status == 429:
        return Failure("rate_limited", "upstream_rate_limited", "http_429", True, message, exc.retry_after)
    if status >= 500 or status in RETRYABLE_STATUS:
        return Failure(
            f"http_{status}", "upstream_unavailable", f"http_{status}", True, message, exc.retry_after
        )
    if isinstance(exc, ModelContextWindowExceededError):
        code = "context_too_long"
    elif isinstance(exc, ModelAuthenticationError):
        code = "upstream_auth_failed"
    elif isinstance(exc, ModelNotFoundError):
        code = "upstream_not_found"
    else:
        code = "upstream_bad_request"
    return Failure(f"http_{status}", code, f"http_{status}", False, message, upstream_fault=False)


def classify(exc: BaseException) -> Failure:
    """Map any exception out of an attempt to a Failure; unknown ones are internal errors."""
    if isinstance(exc, AttemptTimeout):
        total = exc.kind == "total"
        return Failure(
            f"{exc.kind}_timeout",
            f"{exc.kind}_timeout",
            "timeout",
            not total,
            str(exc),
            finish_reason="timeout",
            upstream_fault=not total,
        )
    if isinstance(exc, IncompleteStream):
        return Failure("incomplete_stream", "upstream_incomplete", "incomplete", True, str(exc))
    if _caused_by_json_error(exc):
        return Failure(
            "malformed_chunk", "upstream_malformed", "malformed", True, f"malformed upstream chunk: {exc}"
        )
    if isinstance(exc, ModelHTTPError):
        return _http_failure(exc)
    if isinstance(exc, ModelTimeoutError):
        phase = exc.phase or "read"
        return Failure(
            f"{phase}_timeout", f"{phase}_timeout", "timeout", True, str(exc), finish_reason="timeout"
        )
    if isinstance(exc, ModelConnectionError):
        if exc.phase in ("connect", "pool"):
            return Failure("connect_error", "upstream_unreachable", "connect", True, str(exc))
        return Failure("stream_dropped", "upstream_dropped", "read", True, str(exc))
    if isinstance(exc, ModelRequestTimeout):
        return Failure(
            "first_token_timeout", "first_token_timeout", "timeout", True, str(exc), finish_reason="timeout"
        )
    if isinstance(exc, ModelAPIError):
        retryable = not exc.__class__.__name__.startswith("ModelRequestRejected")
        return Failure("upstream_error", "upstream_error", "other", retryable, str(exc))
    if isinstance(exc, ContentFilterError):
        return Failure(
            "content_filter", "content_filter", "content_filter", False, str(exc), upstream_fault=False
        )
    if isinstance(exc, UsageLimitExceeded):
        return Failure(
            "usage_limit", "usage_limit_exceeded", "usage_limit", False, str(exc), upstream_fault=False
        )
    if isinstance(exc, UnexpectedModelBehavior):
        return Failure(
            "invalid_output", "invalid_output", "invalid_output", False, str(exc), upstream_fault=False
        )
    return Failure(
        "internal_error",
        "internal_error",
        "internal",
        False,
        f"internal error ({type(exc).__name__})",
        upstream_fault=False,
    )
