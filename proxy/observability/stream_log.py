"""Structured logs: one JSON line per finished stream, one per retry and fallback as it happens, and
the app's log configuration.

The stream line carries what an operator needs to find a stream again (stream id, trace id) and to
judge it (agent, model, transport, key name, outcome, attempts, retries, fallbacks, error code, ttft,
duration, tokens). It is built from an allow-list of fields: no prompt or completion text, no error messages
(they can quote the upstream's request), no headers, no credentials.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Final, Literal

from opentelemetry import trace

from proxy.events import AttemptStarted, End, Error, Event, Fallback, Retry, Start
from proxy.log_fields import FIELDS_ATTR
from proxy.observability.observer import StreamContext, StreamOutcome

STREAM_LOGGER: Final = "agent_proxy.stream"

_STATE_KEY: Final = "log"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, the record's `fields`, and the
    current trace and span ids when a span is active."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        fields = getattr(record, FIELDS_ATTR, None)
        if isinstance(fields, dict):
            out.update(fields)
        if "trace_id" not in out:
            sc = trace.get_current_span().get_span_context()
            if sc.is_valid:
                out["trace_id"] = format(sc.trace_id, "032x")
                out["span_id"] = format(sc.span_id, "016x")
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """Human-readable lines with the structured fields as `key=value` pairs."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, FIELDS_ATTR, None)
        if isinstance(fields, dict) and fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        return line


def configure_logging(level: str = "INFO", fmt: Literal["auto", "json", "text"] = "auto") -> None:
    """Root logging for the app: one handler on stderr in the chosen format, `auto` being text for a
    person at a terminal and JSON for a log collector (replaces earlier handlers of ours, so calling
    it twice is harmless)."""
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_agent_proxy", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler._agent_proxy = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)


class _StreamLog:
    __slots__ = ("attempt_model", "attempts", "error_code", "fallbacks", "model", "retries")

    def __init__(self) -> None:
        self.model: str | None = None
        self.attempt_model: str | None = None
        self.attempts = 0
        self.retries = 0
        self.fallbacks = 0
        self.error_code: str | None = None


class LogObserver:
    """Writes the stream line at `stream_finished`, and a line per `retry` and `fallback` (an `Observer`)."""

    sees_deltas = False
    """It records nothing per chunk."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger(STREAM_LOGGER)

    def stream_started(self, ctx: StreamContext) -> None:
        ctx.state[_STATE_KEY] = _StreamLog()

    def event_sent(self, ctx: StreamContext, event: Event) -> None:
        t = type(event)
        if t is AttemptStarted or t is Start or t is Retry or t is Fallback or t is Error:
            st: _StreamLog = ctx.state[_STATE_KEY]
            if isinstance(event, Start | AttemptStarted | Fallback):
                st.model = event.model
                if isinstance(event, AttemptStarted):
                    st.attempts += 1
                    st.attempt_model = event.model
                elif isinstance(event, Fallback):
                    st.fallbacks += 1
                    self._line(ctx, "stream fallback", "stream_fallback", from_model=event.from_model,
                               model=event.model, reason=event.reason)  # fmt: skip
            elif isinstance(event, Retry):
                st.retries += 1
                # The model whose attempt failed, also when the retry comes after a fallback.
                self._line(ctx, "stream retry", "stream_retry", model=st.attempt_model, attempt=event.attempt,
                           max_attempts=event.max_attempts, reason=event.reason, delay_s=event.delay_s,
                           discard=event.discard)  # fmt: skip
            elif isinstance(event, Error):
                st.error_code = event.code

    def _line(self, ctx: StreamContext, message: str, event: str, **values: Any) -> None:
        """A line as a retry or fallback happens, so that an operator watching the log sees it then,
        not only in the stream's `retries`/`fallbacks` counts when it ends."""
        if self._log.isEnabledFor(logging.INFO):
            fields = {"event": event, "stream_id": ctx.stream_id, "agent": ctx.agent, **values,
                      "transport": ctx.transport, "key": ctx.key, "trace_id": ctx.trace_id}  # fmt: skip
            self._log.info(message, extra={FIELDS_ATTR: fields})

    def stream_finished(self, ctx: StreamContext, outcome: StreamOutcome, end: End | None) -> None:
        st: _StreamLog = ctx.state[_STATE_KEY]
        if not self._log.isEnabledFor(logging.INFO):
            return
        ttft = None if ctx.first_content_at is None else round(ctx.first_content_at - ctx.arrived_at, 6)
        fields: dict[str, Any] = {
            "event": "stream_finished",
            "stream_id": ctx.stream_id,
            "agent": ctx.agent,
            "model": st.model,
            "transport": ctx.transport,
            "key": ctx.key,
            "outcome": outcome,
            "attempts": end.attempts if end is not None else st.attempts,
            "retries": st.retries,
            "fallbacks": st.fallbacks,
            "error_code": st.error_code,
            "ttft_s": ttft,
            "duration_s": round(time.monotonic() - ctx.arrived_at, 6),
            "input_tokens": end.usage.input_tokens if end is not None else None,
            "output_tokens": end.usage.output_tokens if end is not None else None,
            "trace_id": ctx.trace_id,
        }
        self._log.info("stream finished", extra={FIELDS_ATTR: fields})
