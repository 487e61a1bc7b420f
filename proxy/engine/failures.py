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
    ModelRequestRejectedError,
    ModelRequestTimeout,
    ModelTimeoutError,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
    UserError,
)

from proxy.events import FinishReason

RETRYABLE_STATUS = frozenset({408, 409, 425, 429})


@dataclass(frozen=True, slots=True, kw_only=True)
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

    @classmethod
    def cancelled(cls) -> Failure:
        """The stream was ended on purpose (client cancel, shutdown): nobody's fault, not retried."""
        return cls(
            reason="cancelled",
            code="cancelled",
            error_type="cancelled",
            retryable=False,
            message="cancelled",
            finish_reason="cancelled",
            upstream_fault=False,
        )

    @classmethod
    def circuit_open(cls, model: str) -> Failure:
        return cls(
            reason="circuit_open",
            code="upstream_unavailable",
            error_type="circuit_open",
            retryable=True,
            message=f"the circuit breaker of {model} is open",
        )

    @classmethod
    def internal(cls, message: str) -> Failure:
        """A bug of ours: never retried, never blamed on the upstream."""
        return cls(
            reason="internal_error",
            code="internal_error",
            error_type="internal",
            retryable=False,
            message=message,
            upstream_fault=False,
        )

    @classmethod
    def timeout(cls, kind: str, message: str, *, retryable: bool = True) -> Failure:
        """A deadline ran out: `kind` is connect, read, first_token, idle or total."""
        return cls(
            reason=f"{kind}_timeout",
            code=f"{kind}_timeout",
            error_type="timeout",
            retryable=retryable,
            message=message,
            finish_reason="timeout",
            upstream_fault=retryable,
        )

    @classmethod
    def upstream(
        cls, reason: str, code: str, error_type: str, message: str, retry_after: float | None = None
    ) -> Failure:
        """The upstream failed in a way another attempt may not (retried, counts for its breaker)."""
        return cls(
            reason=reason,
            code=code,
            error_type=error_type,
            retryable=True,
            message=message,
            retry_after=retry_after,
        )

    @classmethod
    def refused(cls, reason: str, code: str, error_type: str, message: str) -> Failure:
        """The request itself cannot be served (bad request, content filter): not retried, and not
        the upstream's fault."""
        return cls(
            reason=reason,
            code=code,
            error_type=error_type,
            retryable=False,
            message=message,
            upstream_fault=False,
        )


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
        return Failure.upstream("in_stream_error", "upstream_stream_error", "in_stream", message)
    if status == 429:
        return Failure.upstream("rate_limited", "upstream_rate_limited", "http_429", message, exc.retry_after)
    if status >= 500 or status in RETRYABLE_STATUS:
        return Failure.upstream(
            f"http_{status}", "upstream_unavailable", f"http_{status}", message, exc.retry_after
        )
    if isinstance(exc, ModelContextWindowExceededError):
        code = "context_too_long"
    elif isinstance(exc, ModelAuthenticationError):
        code = "upstream_auth_failed"
    elif isinstance(exc, ModelNotFoundError):
        code = "upstream_not_found"
    else:
        code = "upstream_bad_request"
    return Failure.refused(f"http_{status}", code, f"http_{status}", message)


def _with_cause(exc: BaseException) -> str:
    """`exc`'s message and its root cause's: "Exceeded maximum output retries (1)" alone does not
    say what was wrong with the output (the validation error the model was last told about)."""
    root = exc
    for _ in range(8):
        if root.__cause__ is None:
            break
        root = root.__cause__
    message = str(exc)
    cause = " ".join(str(root).split())  # a pydantic validation error spans several lines
    return f"{message}: {cause[:_MAX_CAUSE_CHARS]}" if root is not exc and cause != message else message


_MAX_CAUSE_CHARS = 500


def classify(exc: BaseException) -> Failure:
    """Map any exception out of an attempt to a Failure, by its type; unknown ones are internal."""
    if isinstance(exc, AttemptTimeout):
        return Failure.timeout(exc.kind, str(exc), retryable=exc.kind != "total")
    if isinstance(exc, IncompleteStream):
        return Failure.upstream("incomplete_stream", "upstream_incomplete", "incomplete", str(exc))
    if _caused_by_json_error(exc):
        return Failure.upstream(
            "malformed_chunk", "upstream_malformed", "malformed", f"malformed upstream chunk: {exc}"
        )
    if isinstance(exc, ModelHTTPError):
        return _http_failure(exc)
    if isinstance(exc, ModelTimeoutError):
        return Failure.timeout(exc.phase or "read", str(exc))
    if isinstance(exc, ModelConnectionError):
        if exc.phase in ("connect", "pool"):
            return Failure.upstream("connect_error", "upstream_unreachable", "connect", str(exc))
        return Failure.upstream("stream_dropped", "upstream_dropped", "read", str(exc))
    if isinstance(exc, ModelRequestTimeout):
        return Failure.timeout("first_token", str(exc))
    if isinstance(exc, ModelRequestRejectedError):
        return Failure(
            reason="upstream_error",
            code="upstream_error",
            error_type="other",
            retryable=False,
            message=str(exc),
        )
    if isinstance(exc, ModelAPIError):
        return Failure.upstream("upstream_error", "upstream_error", "other", str(exc))
    if isinstance(exc, ContentFilterError):
        return Failure.refused("content_filter", "content_filter", "content_filter", str(exc))
    if isinstance(exc, UsageLimitExceeded):
        return Failure.refused("usage_limit", "usage_limit_exceeded", "usage_limit", str(exc))
    if isinstance(exc, UserError) and "conflicts with existing tool" in str(exc):
        # The agent's own tools (MCP) are only listed when the run starts: a client tool of the same
        # name is the request's mistake, found late.
        return Failure.refused(
            "tool_name_conflict",
            "tool_name_conflict",
            "tool_name_conflict",
            f"a tool of the request is named like one of the agent's own tools: {exc}",
        )
    if isinstance(exc, UnexpectedModelBehavior):
        return Failure.refused("invalid_output", "invalid_output", "invalid_output", _with_cause(exc))
    return Failure.internal(f"internal error ({type(exc).__name__})")
