"""Fixtures for the observability tests: scripted event streams driven through the real `pump`,
fresh metric registries, an in-memory span exporter, and promtool."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from proxy.events import (
    AttemptFinished,
    AttemptStarted,
    CircuitChanged,
    Delta,
    End,
    Error,
    Event,
    Fallback,
    Output,
    Retry,
    Start,
    Usage,
)
from proxy.observability.metrics import ProxyMetrics
from proxy.observability.metrics_observer import MetricsObserver
from proxy.observability.observer import Observer, Observers, StreamContext, Transport
from proxy.transports.pump import pump

ROOT = Path(__file__).resolve().parents[2]
AGENTS = ["demo", "writer"]
MODELS = ["mock:fast", "mock:slow", "openai-chat:gpt-4o-mini"]


# --- scripted streams --------------------------------------------------------------------------


@dataclass
class Pause:
    """A script step: the engine is silent for `seconds`."""

    seconds: float


@dataclass
class Script:
    """Builds the event sequence the engine would yield for one stream (seq assigned in order)."""

    stream_id: str = "s-1"
    agent: str = "demo"
    steps: list[Event | Pause] = field(default_factory=list)
    _seq: int = 0
    _attempt: int = 0
    _model: str = "mock:fast"

    def _add(self, event: Event) -> Script:
        if not event.internal:
            event.seq = self._seq
            self._seq += 1
        self.steps.append(event)
        return self

    def pause(self, seconds: float) -> Script:
        self.steps.append(Pause(seconds))
        return self

    def start(self, model: str = "mock:fast") -> Script:
        return self._add(
            Start(
                stream_id=self.stream_id,
                agent=self.agent,
                model=model,
                conversation_id=None,
                created_at=time.time(),
            )
        )

    def attempt(self, model: str = "mock:fast") -> Script:
        self._attempt += 1
        self._model = model
        return self._add(
            AttemptStarted(stream_id=self.stream_id, agent=self.agent, model=model, attempt=self._attempt)
        )

    def deltas(self, *texts: str, gap: float = 0.0) -> Script:
        for text in texts:
            if gap:
                self.pause(gap)
            self._add(Delta(stream_id=self.stream_id, text=text))
        return self

    def output(self, data: Any, partial: bool) -> Script:
        return self._add(Output(stream_id=self.stream_id, data=data, partial=partial))

    def finish_attempt(
        self, model: str = "mock:fast", outcome: str = "success", error_type: str | None = None,
        reason: str | None = None,
    ) -> Script:  # fmt: skip
        return self._add(
            AttemptFinished(
                stream_id=self.stream_id, agent=self.agent, model=model, outcome=outcome,  # type: ignore[arg-type]
                error_type=error_type, reason=reason, duration_s=0.01,
            )
        )  # fmt: skip

    def retry(self, reason: str, discard: bool = False) -> Script:
        return self._add(
            Retry(stream_id=self.stream_id, attempt=self._attempt, max_attempts=3, reason=reason, delay_s=0.0,
                  discard=discard)
        )  # fmt: skip

    def fallback(self, from_model: str, model: str, reason: str = "circuit_open") -> Script:
        return self._add(
            Fallback(
                stream_id=self.stream_id, agent=self.agent, from_model=from_model, model=model, reason=reason
            )
        )

    def circuit(self, model: str, state: str) -> Script:
        return self._add(CircuitChanged(stream_id=self.stream_id, model=model, state=state))  # type: ignore[arg-type]

    def error(self, code: str, message: str = "upstream said no") -> Script:
        return self._add(Error(stream_id=self.stream_id, code=code, message=message, retryable=False))

    def end(self, finish_reason: str = "stop", input_tokens: int = 0, output_tokens: int = 0) -> Script:
        return self._add(
            End(
                stream_id=self.stream_id, finish_reason=finish_reason, text="", attempts=self._attempt,  # type: ignore[arg-type]
                model=self._model,
                usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens, requests=self._attempt),
                ttft_s=None, duration_s=0.0, conversation_id=None,
            )
        )  # fmt: skip

    def ok(self, model: str = "mock:fast", texts: Iterable[str] = ("Hel", "lo"), gap: float = 0.0) -> Script:
        """A whole successful one-attempt stream."""
        return (
            self.start(model).attempt(model).deltas(*texts, gap=gap).finish_attempt(model).end("stop", 5, 7)
        )


async def play(steps: Iterable[Event | Pause]) -> AsyncIterator[Event]:
    """A fake engine: yields the scripted events, sleeping at pauses."""
    for step in steps:
        if isinstance(step, Pause):
            await asyncio.sleep(step.seconds)
        else:
            yield step


@dataclass
class Driven:
    ctx: StreamContext
    sent: list[Event]
    end: End | None


async def drive(
    observer: Observer,
    events: AsyncIterator[Event] | Script,
    *,
    transport: Transport = "sse",
    agent: str | None = None,
    headers: Mapping[str, str] | None = None,
    gone_after: int | None = None,
    heartbeat_interval: float | None = None,
    arrived_ago: float = 0.0,
    stream_id: str = "s-1",
) -> Driven:
    """Run one stream through the real writer loop with a fake client; `gone_after` sends succeed
    before the client disappears (ConnectionResetError)."""
    if isinstance(events, Script):
        agent = agent or events.agent
        stream_id = events.stream_id
        events = play(events.steps)
    sent: list[Event] = []

    async def send(event: Event) -> None:
        if gone_after is not None and len(sent) >= gone_after:
            raise ConnectionResetError("client went away")
        sent.append(event)

    ctx = StreamContext(
        stream_id=stream_id, agent=agent or "demo", transport=transport, trace_headers=dict(headers or {}),
        arrived_at=time.monotonic() - arrived_ago,
    )  # fmt: skip
    end = await pump(events, send, ctx, observer, heartbeat_interval=heartbeat_interval)
    return Driven(ctx, sent, end)


# --- metrics and traces ------------------------------------------------------------------------


@pytest.fixture
def metrics() -> ProxyMetrics:
    return ProxyMetrics(AGENTS, MODELS, slo_ttft_s=2.5, slo_inter_token_s=0.25)


@pytest.fixture
def metrics_observer(metrics: ProxyMetrics) -> Observers:
    return Observers([MetricsObserver(metrics)])


@dataclass
class Traced:
    provider: TracerProvider
    exporter: InMemorySpanExporter

    def spans(self) -> list[Any]:
        return list(self.exporter.get_finished_spans())

    def by_name(self, name: str) -> list[Any]:
        return [s for s in self.spans() if s.name == name]


@pytest.fixture
def traced() -> Iterator[Traced]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Traced(provider, exporter)
    provider.shutdown()


def sample(metrics: ProxyMetrics, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0.0 when there are none)."""
    assert metrics.registry is not None
    wanted = labels.items()
    return sum(
        s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name == name and wanted <= s.labels.items()
    )


# --- promtool ----------------------------------------------------------------------------------

MISSING_PROMETHEUS = (
    "{tool} is not installed: run scripts/ensure-tools.sh prometheus promtool prometheus (as root it "
    "installs Debian's 'prometheus' package), or apt-get install --no-install-recommends prometheus"
)


def require_tool(tool: str) -> str:
    """The tool's path; the test fails (never skips) when it is missing."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(MISSING_PROMETHEUS.format(tool=tool))
    return path


@pytest.fixture
def promtool() -> Callable[..., subprocess.CompletedProcess[str]]:
    path = require_tool("promtool")

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [path, *args], input=stdin, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
        )

    return run
