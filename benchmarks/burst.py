"""A burst of streams opened at once against one proxy process with the shipped defaults.

    .venv/bin/python benchmarks/burst.py [--streams 2000] [--chunks 20] [--gap-ms 1000] [--base REV]

Does every stream of the burst finish, and is the upstream blamed for the proxy's own overload? The
same burst goes direct to the mock upstream first (the baseline: what the load generator and the mock
alone cost), then through the working tree's proxy, and with `--base` through that revision's proxy
too (checked out in a temporary git worktree). The proxy's config names only the upstream, the
agent and the heartbeat interval (`--heartbeat-s`, 15 s as shipped): every other setting is the
shipped default (5 s connect timeout, breaker, retries, stream log). Per target: streams ok, error
codes, TTFT p50/p99, the proxy's CPU; from its /metrics the upstream errors, retries and open
circuits; from its log the circuit lines.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
from ab import checked_out, spawn
from bench import ROOT, cpu_seconds, free_port, wait_ready
from prometheus_client.parser import text_string_to_metric_families

from proxy.loadtest import LoadConfig, LoadResult, run_load
from proxy.loadtest.config import Target

CONFIG = """
[server]
heartbeat_interval_s = {heartbeat_s}

[upstreams.mock]
base_url = "{base_url}"

[agents.burst]
model = "mock:burst?chunks={chunks}&gap_ms={gap_ms}"
"""

COUNTED = (
    "agent_proxy_upstream_errors_total",
    "agent_proxy_retries_total",
    "agent_proxy_circuit_open",
)


async def scrape(url: str, names: tuple[str, ...] = COUNTED) -> dict[str, float]:
    """The sums of the proxy's samples named `names`, from its /metrics."""
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as resp:
        text = await resp.text()
    totals = dict.fromkeys(names, 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in totals:
                totals[sample.name] += sample.value
    return totals


def burst_config(url: str, target: Target, agent: str, args: argparse.Namespace) -> LoadConfig:
    # Every worker sends one stream, all at once (or spread over `--ramp-up-s`).
    expected_s = args.chunks * args.gap_ms / 1000 + args.ramp_up_s
    return LoadConfig(
        url=url,
        target=target,
        agent=agent,
        concurrency=args.streams,
        requests=args.streams,
        max_in_flight=args.streams,
        ramp_up_s=args.ramp_up_s,
        timeout_s=expected_s + 120,
        max_time_s=expected_s + 300,
    )


def report(name: str, result: LoadResult, extra: str = "") -> None:
    ttft = {k: round(v * 1000) for k, v in result.ttft.items() if k in ("p50", "p99")}
    print(
        f"{name:28} ok {result.ok}/{result.total}  errors {dict(result.errors) or '-'}  "
        f"TTFT ms p50 {ttft.get('p50')} p99 {ttft.get('p99')}  {extra}",
        flush=True,
    )


async def through_proxy(name: str, tree: Path, config: Path, log: Path, args: argparse.Namespace) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as stderr:
        process = spawn(
            "-m", "proxy.cli", "serve", "--config", str(config), "--port", str(port), cwd=tree, stderr=stderr
        )
        try:
            await wait_ready(f"{url}/readyz")
            for target in args.targets:
                before, cpu0 = await scrape(url), cpu_seconds(process.pid)
                result = await run_load(burst_config(url, target, "burst", args))
                cpu_ms = (cpu_seconds(process.pid) - cpu0) / max(result.total, 1) * 1000
                after = await scrape(url)
                counts = {k.removeprefix("agent_proxy_"): round(after[k] - before[k]) for k in COUNTED}
                report(f"{name}, {target}", result, f"CPU/stream {cpu_ms:.1f} ms  {counts}")
        finally:
            process.terminate()
            process.wait(30)
    lines = (await asyncio.to_thread(log.read_text, errors="replace")).splitlines()
    opened = sum("circuit_opened" in line for line in lines)
    print(f"{name:28} circuit-opened log lines: {opened}", flush=True)


async def run(args: argparse.Namespace, trees: dict[str, Path]) -> None:
    tmp = Path(tempfile.mkdtemp())
    mock_port = free_port()
    mock_url = f"http://127.0.0.1:{mock_port}"
    mock = spawn("-m", "proxy.mock_upstream", "--port", str(mock_port), cwd=ROOT)
    config = tmp / "burst.toml"
    config.write_text(
        CONFIG.format(
            base_url=f"{mock_url}/v1", chunks=args.chunks, gap_ms=args.gap_ms, heartbeat_s=args.heartbeat_s
        )
    )
    try:
        await wait_ready(f"{mock_url}/health")
        direct = await run_load(
            burst_config(mock_url, "openai", f"burst?chunks={args.chunks}&gap_ms={args.gap_ms}", args)
        )
        report("direct to the mock", direct)
        for name, tree in trees.items():
            await through_proxy(name, tree, config, tmp / f"{len(name)}-{name[:8]}.log", args)
    finally:
        mock.terminate()
        mock.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--gap-ms", type=int, default=1000)
    parser.add_argument("--ramp-up-s", type=float, default=0.0, help="spread the opens over this long")
    parser.add_argument("--heartbeat-s", type=float, default=15.0, help="the shipped default: 15")
    parser.add_argument("--targets", nargs="+", default=["sse"], choices=["sse", "ws", "openai"])
    parser.add_argument("--base", help="also burst this git revision's proxy (e.g. HEAD~1)")
    args = parser.parse_args()
    with ExitStack() as stack:
        trees: dict[str, Any] = {"working tree": ROOT}
        if args.base:
            trees = {f"base ({args.base})": stack.enter_context(checked_out(args.base)), **trees}
        asyncio.run(run(args, trees))


if __name__ == "__main__":
    main()
