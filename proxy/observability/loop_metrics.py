"""The process's own load: how late its event loop runs, and how many streams wait to start."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from prometheus_client import CollectorRegistry, Gauge, Histogram

if TYPE_CHECKING:
    from proxy.engine.start_gate import StartGate
    from proxy.loop_lag import LoopLag

LAG_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class LoopMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.lag = Histogram(
            "agent_proxy_event_loop_lag_seconds",
            "How late the event loop ran a timer due every 20 ms: the proxy's own overload.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.waiting = Gauge(
            "agent_proxy_streams_waiting",
            "Streams admitted and waiting to start their upstream attempt while the event loop lags.",
            registry=registry,
            multiprocess_mode="livesum",
        )

    def watch(self, lag: LoopLag, gate: StartGate | None) -> None:
        """Observe every tick of `lag`, and the length of `gate`'s queue."""
        waiting = -1

        def tick(lag_s: float) -> None:
            nonlocal waiting
            self.lag.observe(lag_s)
            if gate is not None and gate.waiting != waiting:
                waiting = gate.waiting
                self.waiting.set(waiting)

        lag.listen(tick)
