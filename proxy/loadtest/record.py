"""One request's measurements (`RequestRecord`), filled in by a wire client as bytes arrive."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from proxy.loadtest.stats import mean_itl

# Error kinds the tool itself assigns; stream error codes from the server are used as they come.
CONNECT = "connect"
DISCONNECTED = "disconnected"
TIMEOUT = "timeout"
TRUNCATED = "truncated"
ABORTED = "aborted"
BAD_PAYLOAD = "bad_payload"
CLIENT_ERROR = "client_error"


@dataclass(slots=True, kw_only=True)
class RequestRecord:
    """Times are perf_counter seconds while the request runs; `finish(t0)` makes them relative to
    the run start. TTFT and E2E are measured from the *intended* send time (coordinated omission):
    in an open loop a request that waited for a free slot carries that wait in its latency.
    """

    index: int
    warmup: bool = False
    intended: float = 0.0
    sent: float | None = None
    first_content: float | None = None
    last_content: float | None = None
    ended: float | None = None
    gaps: list[float] = field(default_factory=list)
    chunks: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    retries: int = 0
    discarded_chunks: int = 0
    heartbeats: int = 0
    status: int | None = None
    finish_reason: str | None = None
    error: str | None = None
    error_message: str | None = None

    def content(self, t: float) -> None:
        """A content-bearing event arrived at `t`."""
        last = self.last_content
        if last is None:
            self.first_content = t
        else:
            self.gaps.append(t - last)
        self.last_content = t
        self.chunks += 1

    def fail(self, kind: str, message: str | None = None) -> None:
        """Mark the request failed; the first failure wins (a later one is usually its echo)."""
        if self.error is None:
            self.error = kind
            self.error_message = message[:300] if message else None

    def usage(self, input_tokens: object, output_tokens: object) -> None:
        if isinstance(input_tokens, int):
            self.input_tokens = input_tokens
        if isinstance(output_tokens, int):
            self.output_tokens = output_tokens

    def finish(self, t0: float) -> None:
        """Shift every absolute time to seconds since the run start `t0`."""
        self.intended -= t0
        if self.sent is not None:
            self.sent -= t0
        if self.first_content is not None:
            self.first_content -= t0
        if self.last_content is not None:
            self.last_content -= t0
        if self.ended is not None:
            self.ended -= t0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def ttft_s(self) -> float | None:
        """From the intended send time to the first content-bearing event."""
        if self.first_content is None:
            return None
        return self.first_content - self.intended

    @property
    def e2e_s(self) -> float | None:
        """From the intended send time to the end of the stream (or its failure)."""
        if self.ended is None:
            return None
        return self.ended - self.intended

    @property
    def send_lag_s(self) -> float | None:
        """How late the request went out against its schedule (waiting for a slot, or the tool lagging)."""
        if self.sent is None:
            return None
        return self.sent - self.intended

    @property
    def itl_mean_s(self) -> float | None:
        """(E2E - TTFT) / (chunks - 1)."""
        ttft, e2e = self.ttft_s, self.e2e_s
        if ttft is None or e2e is None:
            return None
        return mean_itl(e2e, ttft, self.chunks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "warmup": self.warmup,
            "intended_s": self.intended,
            "sent_s": self.sent,
            "ttft_s": self.ttft_s,
            "e2e_s": self.e2e_s,
            "itl_mean_s": self.itl_mean_s,
            "gaps_s": self.gaps,
            "chunks": self.chunks,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "retries": self.retries,
            "discarded_chunks": self.discarded_chunks,
            "heartbeats": self.heartbeats,
            "status": self.status,
            "finish_reason": self.finish_reason,
            "ok": self.ok,
            "error": self.error,
            "error_message": self.error_message,
        }
