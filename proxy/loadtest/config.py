"""What one load test does: target, load shape, bounds and SLOs (`LoadConfig`), and prompt loading."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

Target = Literal["sse", "ws", "openai", "responses", "anthropic"]
Arrival = Literal["constant", "poisson"]
TARGETS: tuple[Target, ...] = ("sse", "ws", "openai", "responses", "anthropic")
ARRIVALS: tuple[Arrival, ...] = ("constant", "poisson")

# When only --requests bounds a run, this caps its wall time so the tool always stops.
DEFAULT_MAX_TIME_S = 3600.0
# Slack on top of the expected run time before the hard stop aborts what is still in flight.
HARD_STOP_SLACK_S = 10.0


@dataclass(kw_only=True)
class LoadConfig:
    """One load test. Exactly one of `concurrency` (closed loop) or `rate` (open loop) applies;
    with neither, the run is a closed loop of concurrency 1. At least one of `requests` and
    `duration_s` must be set.

    `ramp_up_s` starts the closed loop's workers evenly over that time instead of all at once
    (a burst of thousands of new connections costs the tool about a millisecond of CPU each,
    which would otherwise show up in the first requests' TTFT).

    `tune_gc` keeps Python's full garbage collections (100+ ms pauses with thousands of streams)
    out of the run; it changes process-wide settings for the run's duration.

    `requests` counts measured requests and `duration_s` the measured phase: warm-up requests
    (the first `warmup_requests`, and all whose intended send time is within `warmup_s` of the
    start) come on top and are excluded from every statistic.
    """

    url: str = "http://127.0.0.1:8080"
    target: Target = "sse"
    agent: str = "demo"
    prompts: list[str] = field(default_factory=lambda: ["Hello"])
    concurrency: int | None = None
    rate: float | None = None
    arrival: Arrival = "constant"
    seed: int | None = None
    requests: int | None = None
    duration_s: float | None = None
    warmup_requests: int = 0
    warmup_s: float = 0.0
    timeout_s: float = 60.0
    max_time_s: float | None = None
    max_in_flight: int = 4096
    ramp_up_s: float = 0.0
    tune_gc: bool = True
    ws_streams_per_socket: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    slo_ttft_s: float | None = None
    slo_itl_s: float | None = None
    slo_e2e_s: float | None = None

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.arrival not in ARRIVALS:
            raise ValueError(f"arrival must be one of {', '.join(ARRIVALS)}, got {self.arrival!r}")
        if self.concurrency is not None and self.rate is not None:
            raise ValueError("give concurrency (closed loop) or rate (open loop), not both")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if self.rate is not None and not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError("rate must be a positive number of requests per second")
        if self.requests is None and self.duration_s is None:
            raise ValueError("bound the run with requests and/or duration")
        if self.requests is not None and self.requests < 1:
            raise ValueError("requests must be >= 1")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError("duration must be > 0")
        if self.warmup_requests < 0 or self.warmup_s < 0:
            raise ValueError("warm-up must be >= 0")
        if self.timeout_s <= 0:
            raise ValueError("timeout must be > 0")
        if self.max_time_s is not None and self.max_time_s <= 0:
            raise ValueError("max time must be > 0")
        if self.ramp_up_s < 0:
            raise ValueError("ramp-up must be >= 0")
        if self.ramp_up_s and self.rate is not None:
            raise ValueError("ramp-up applies to the closed loop (concurrency); an open loop has its rate")
        if self.max_in_flight < 1:
            raise ValueError("max in flight must be >= 1")
        if self.ws_streams_per_socket < 1:
            raise ValueError("ws streams per socket must be >= 1")
        if not self.prompts:
            raise ValueError("no prompts")
        for name in ("slo_ttft_s", "slo_itl_s", "slo_e2e_s"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ValueError(f"{name} must be > 0")

    @property
    def open_loop(self) -> bool:
        return self.rate is not None

    @property
    def in_flight_limit(self) -> int:
        """Most requests in flight at once: the concurrency, or `max_in_flight` in an open loop."""
        if self.rate is not None:
            return self.max_in_flight
        return self.concurrency or 1

    def effective_max_time_s(self) -> float:
        """The hard overall timeout: given, or derived from the bounds so the run always ends."""
        if self.max_time_s is not None:
            return self.max_time_s
        if self.duration_s is None:
            return DEFAULT_MAX_TIME_S
        # A count warm-up in a closed loop takes at most this many request timeouts.
        warm_rounds = math.ceil(self.warmup_requests / self.in_flight_limit) if self.warmup_requests else 0
        if self.rate is not None and self.warmup_requests:
            warm = self.warmup_requests / self.rate + self.timeout_s
        else:
            warm = warm_rounds * self.timeout_s
        return self.ramp_up_s + self.warmup_s + warm + self.duration_s + self.timeout_s + HARD_STOP_SLACK_S

    @property
    def slos(self) -> dict[str, float]:
        """The SLOs that were given, by name (ttft, itl, e2e), in seconds."""
        out: dict[str, float] = {}
        if self.slo_ttft_s is not None:
            out["ttft"] = self.slo_ttft_s
        if self.slo_itl_s is not None:
            out["itl"] = self.slo_itl_s
        if self.slo_e2e_s is not None:
            out["e2e"] = self.slo_e2e_s
        return out

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        # Prompts can be long and many; the record says how many there were and the first one.
        out["prompts"] = {"count": len(self.prompts), "first": self.prompts[0][:200] if self.prompts else ""}
        out["headers"] = sorted(self.headers)  # names only: values may be credentials
        return out


def load_prompts(path: str | Path) -> list[str]:
    """Prompts from a file: one per line, or JSONL objects with a `prompt` field; blank lines skipped."""
    prompts: list[str] = []
    text = Path(path).read_text(encoding="utf-8")
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                obj = None
            if isinstance(obj, dict):
                prompt = obj.get("prompt")
                if not isinstance(prompt, str):
                    raise ValueError(f"{path}:{lineno}: JSON line without a string 'prompt'")
                prompts.append(prompt)
                continue
        prompts.append(raw)
    if not prompts:
        raise ValueError(f"{path}: no prompts")
    return prompts
