"""Terminal output with rich: the live progress line while a run goes, and the summary tables after."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from proxy.loadtest.result import LoadResult
from proxy.loadtest.runner import LiveStats

_REFRESH_S = 0.25
_LATENCY_ROWS: tuple[tuple[str, str], ...] = (
    ("ttft", "TTFT"),
    ("itl", "ITL, all gaps"),
    ("itl_mean", "ITL mean/request"),
    ("e2e", "E2E"),
    ("send_lag", "send lag"),
)
_LATENCY_CAPTION = (
    "From the intended send time. TTFT: to the first delta/output (content) event. ITL, all gaps: every "
    "gap between consecutive content events. ITL mean/request: (E2E−TTFT)/(chunks−1). E2E: to the end "
    "of the stream. Send lag: actual − intended send time."
)
_COLUMNS: tuple[str, ...] = ("p50", "p90", "p95", "p99", "max", "mean")


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    ms = value * 1000.0
    return f"{ms:,.1f}" if ms < 100 else f"{ms:,.0f}"


def progress_line(live: LiveStats, total: int | None) -> Text:
    p50 = live.ttft_p50()
    done = f"{live.done}/{total}" if total else str(live.done)
    text = Text()
    text.append(f"{live.elapsed_s:6.1f}s ", style="bold")
    text.append(f"done {done}  in flight {live.in_flight}  ")
    text.append(f"errors {live.errors}  ", style="red" if live.errors else "")
    text.append(f"chunks {live.chunks:,}  TTFT p50 {_ms(p50)} ms")
    return text


@contextlib.asynccontextmanager
async def live_progress(live: LiveStats, console: Console, total: int | None) -> AsyncIterator[None]:
    """Redraw one progress line from the event loop (no refresh thread) until the block exits."""
    display = Live(progress_line(live, total), console=console, auto_refresh=False, transient=True)

    async def refresh() -> None:
        while True:
            await asyncio.sleep(_REFRESH_S)
            display.update(progress_line(live, total), refresh=True)

    with display:
        task = asyncio.create_task(refresh())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def latency_table(result: LoadResult) -> Table:
    table = Table(
        title="Latency (ms), successful measured requests",
        title_justify="left",
        caption=_LATENCY_CAPTION,
        caption_justify="left",
    )
    table.add_column("metric")
    table.add_column("n", justify="right")
    for col in _COLUMNS:
        table.add_column(col, justify="right")
    for key, label in _LATENCY_ROWS:
        dist: dict[str, float] = getattr(result, key)
        table.add_row(label, str(int(dist.get("count", 0))), *(_ms(dist.get(col)) for col in _COLUMNS))
    return table


def throughput_table(result: LoadResult) -> Table:
    cfg = result.config
    table = Table(title="Throughput and outcomes", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value")
    shape = (
        f"open loop {cfg.rate:g}/s {cfg.arrival}"
        if cfg.rate is not None
        else (f"closed loop, concurrency {cfg.concurrency or 1}")
    )
    table.add_row("target", f"{cfg.target} {cfg.url} ({cfg.agent})")
    table.add_row("load", shape)
    table.add_row("requests ok / measured", f"{result.ok} / {result.total}  (+{result.warmup} warm-up)")
    table.add_row("window", f"{result.window_s:.2f} s (wall {result.wall_s:.2f} s)")
    table.add_row("requests/s (all, ok)", f"{result.requests_per_s:,.2f}, {result.ok_per_s:,.2f}")
    table.add_row("chunks/s", f"{result.chunks_per_s:,.1f}  ({result.chunks:,} chunks)")
    table.add_row("tokens/s (usage)", f"{result.tokens_per_s:,.1f}  ({result.tokens:,} output tokens)")
    if result.goodput is not None and result.goodput_per_s is not None:
        slos = ", ".join(f"{k} ≤ {_ms(v)} ms" for k, v in cfg.slos.items())
        table.add_row(f"goodput ({slos})", f"{result.goodput_per_s:,.2f}/s  ({result.goodput} requests)")
    table.add_row("retries seen / heartbeats seen", f"{result.retries} / {result.heartbeats}")
    if result.errors:
        table.add_row("errors", ", ".join(f"{k}: {v}" for k, v in result.errors.items()), style="red")
    else:
        table.add_row("errors", "none")
    if result.hard_stopped:
        table.add_row("stopped", "by the overall time limit (--max-time)", style="red")
    lag = result.tool_loop_lag
    tool = (
        f"CPU {result.tool_cpu_pct:.0f}% of a core, loop lag p99 {_ms(lag.get('p99'))} ms, "
        f"max {_ms(lag.get('max'))} ms"
    )
    if result.tool_saturated:
        tool += " (busy: latencies may include its own delay)"
        table.add_row("load generator", tool, style="yellow")
    else:
        table.add_row("load generator", tool)
    return table


def print_summary(result: LoadResult, console: Console) -> None:
    console.print(Group(latency_table(result), throughput_table(result)))
