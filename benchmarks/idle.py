"""Many idle streams on one proxy process: 10,000 streams open at once, one chunk every 10 s,
heartbeats in every gap.

    .venv/bin/python benchmarks/idle.py [--streams 10000] [--chunks 20] [--gap-ms 10000] [--heartbeat-s 4]
    .venv/bin/python benchmarks/idle.py --target ws [--ws-streams-per-socket 10]

Each SSE stream holds a client socket and an upstream socket in the proxy; WebSocket streams share
their client sockets (`--ws-streams-per-socket`), so they need about half the files. The run raises
its open-file limit; raising the hard limit needs CAP_SYS_RESOURCE, and a run that would not fit
under the limit stops at once and says so (past it the proxy could not accept connections, and
streams and scrapes would fail mid-run). The streams open over `--ramp-up-s` (a
burst is `burst.py`'s subject); once all are open, the proxy's CPU over a stretch of the idle phase is
divided by the heartbeats and chunks it sent meanwhile (from its /metrics). Reports streams ok and
errors, TTFT, and the proxy's RSS at the start, the peak and the end; `--direct` first runs the same
streams direct to the mock.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import resource
import sys
import tempfile
from pathlib import Path

from ab import spawn
from bench import ROOT, cpu_seconds, free_port, rss_mib, wait_ready
from burst import burst_config, report, scrape

from proxy.loadtest import LoadConfig, run_load

CONFIG = """
[server]
heartbeat_interval_s = {heartbeat_s}
max_concurrent_streams = {streams}

[upstreams.mock]
base_url = "{base_url}"

[agents.idle]
model = "mock:idle?chunks={chunks}&gap_ms={gap_ms}"

[agents.warm]
model = "mock:warm?chunks=8"
"""


def raise_open_files(needed: int) -> int:
    """Raise this process's open-file limit (inherited by the proxy and the mock) towards `needed`;
    the limit obtained."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            return needed
        except (ValueError, PermissionError):
            needed = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    return max(soft, needed)


async def sent(url: str) -> float:
    """Heartbeats and content events the proxy has sent so far (its /metrics)."""
    counted = await scrape(url, ("agent_proxy_heartbeats_total", "agent_proxy_inter_token_seconds_count"))
    return sum(counted.values())


async def peak_rss(pid: int, done: asyncio.Event) -> float:
    peak = 0.0
    while not done.is_set():
        peak = max(peak, rss_mib(pid))
        try:
            async with asyncio.timeout(1):
                await done.wait()
        except TimeoutError:
            pass
    return peak


async def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp())
    mock_port, proxy_port = free_port(), free_port()
    mock_url, proxy_url = f"http://127.0.0.1:{mock_port}", f"http://127.0.0.1:{proxy_port}"
    config = tmp / "idle.toml"
    config.write_text(
        CONFIG.format(
            base_url=f"{mock_url}/v1",
            chunks=args.chunks,
            gap_ms=args.gap_ms,
            heartbeat_s=args.heartbeat_s,
            streams=args.streams,
        )
    )
    mock = spawn("-m", "proxy.mock_upstream", "--port", str(mock_port), cwd=ROOT)
    log = (tmp / "proxy.log").open("wb")
    proxy = spawn(
        "-m", "proxy.cli", "serve", "--config", str(config), "--port", str(proxy_port), cwd=ROOT, stderr=log
    )
    try:
        await wait_ready(f"{mock_url}/health")
        await wait_ready(f"{proxy_url}/readyz")
        if args.direct:
            model = f"idle?chunks={args.chunks}&gap_ms={args.gap_ms}"
            report("direct to the mock", await run_load(burst_config(mock_url, "openai", model, args)))
        warm = LoadConfig(url=proxy_url, target=args.target, agent="warm", concurrency=8, requests=200)
        await run_load(warm)
        rss_start = rss_mib(proxy.pid)
        done = asyncio.Event()
        watcher = asyncio.create_task(peak_rss(proxy.pid, done))
        idle = burst_config(proxy_url, args.target, "idle", args)
        load = dataclasses.replace(idle, ws_streams_per_socket=args.ws_streams_per_socket)
        running = asyncio.create_task(run_load(load))
        # The idle phase: every stream open, between its first and last chunk. The load generator
        # shares this loop, so the stretch is timed by the clock, not by the sleep.
        loop = asyncio.get_running_loop()
        await asyncio.sleep(args.ramp_up_s + args.gap_ms / 1000)
        began, cpu0, sent0 = loop.time(), cpu_seconds(proxy.pid), await sent(proxy_url)
        await asyncio.sleep(args.gap_ms / 1000 * (args.chunks // 2))
        window = loop.time() - began
        cpu, writes = cpu_seconds(proxy.pid) - cpu0, await sent(proxy_url) - sent0
        result = await running
        done.set()
        peak = await watcher
        report(
            f"through the proxy ({args.target})",
            result,
            f"RSS MiB start {rss_start:.0f} peak {peak:.0f} after {rss_mib(proxy.pid):.0f}  "
            f"idle {window:.0f} s: CPU {cpu:.1f} s ({cpu / window:.0%} of a core), "
            f"{writes:.0f} heartbeats and chunks, {cpu / max(writes, 1) * 1e6:.0f} µs each",
        )
    finally:
        for process in (proxy, mock):
            process.kill()
            process.wait(30)
        log.close()
        print(f"proxy log: {log.name}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--gap-ms", type=int, default=10_000)
    parser.add_argument("--heartbeat-s", type=float, default=4.0)
    parser.add_argument("--ramp-up-s", type=float, default=100.0, help="open the streams over this long")
    parser.add_argument("--direct", action="store_true", help="first the same streams direct to the mock")
    parser.add_argument("--target", default="sse", choices=["sse", "ws"])
    parser.add_argument(
        "--ws-streams-per-socket", type=int, default=10, help="with --target ws: streams sharing a socket"
    )
    args = parser.parse_args()
    if args.target == "sse":
        args.ws_streams_per_socket = 1
    # The proxy holds an upstream socket per stream and the client sockets, with room for sockets
    # still closing; the load generator (this process) holds the client sockets too.
    client_sockets = math.ceil(args.streams / args.ws_streams_per_socket)
    needed = args.streams + client_sockets + 512
    limit = raise_open_files(needed + client_sockets + 512)
    if limit < needed:
        # Past it the proxy cannot accept connections (EMFILE): streams and scrapes would fail mid-run.
        sys.exit(
            f"the open-file limit here is {limit} and cannot be raised (the hard limit needs "
            f"CAP_SYS_RESOURCE): the proxy needs a socket per stream and one per client connection, so "
            f"{args.streams} streams need over {needed}; run fewer streams, WebSocket streams that share "
            f"sockets (--target ws), or where the limit can be raised"
        )
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
