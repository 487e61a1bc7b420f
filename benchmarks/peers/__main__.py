"""`make bench-peers`: agent-proxy (shipped defaults, SSE, WebSocket and OpenAI endpoints) against
Portkey's gateway, LiteLLM and a byte relay, side by side on one mock upstream, interleaved in one run.

    PYTHONPATH=benchmarks .venv/bin/python -m peers [--repetitions 3] [--targets ...] [--loads a b c]
        [--requests 300 1000 1000] [--max-seconds 30] [--scratch .bench-peers]

Installs the peers into the scratch directory on first use (npm and pip), then reuses them. Writes
`docs/benchmarks-peers.md` and the raw samples to bench-results/.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import time
from importlib.metadata import version
from pathlib import Path

import orjson
from bench import ROOT, free_port, machine_summary

from peers import install, targets
from peers.report import DIRECT, Context, Sample, render
from peers.targets import LOADS, Load, Server, Target
from proxy.loadtest import run_load
from proxy.loadtest.config import Target as Wire

TARGETS = {
    DIRECT: "direct to the mock (no proxy)",
    "agent-proxy-sse": "agent-proxy, SSE",
    "agent-proxy-ws": "agent-proxy, WebSocket",
    "agent-proxy-openai": "agent-proxy, OpenAI endpoint",
    "portkey": f"Portkey gateway {install.PORTKEY_VERSION} (Node)",
    "litellm": f"LiteLLM {install.LITELLM_VERSION}",
    "relay": "byte relay (`benchmarks/relay.py`)",
}
AGENT_PROXY_WIRES: dict[str, Wire] = {
    "agent-proxy-sse": "sse",
    "agent-proxy-ws": "ws",
    "agent-proxy-openai": "openai",
}
WARMUP_REQUESTS = 40
REQUEST_TIMEOUT_S = 120.0


def build(names: list[str], scratch: Path, mock: str) -> tuple[list[Target], list[Server]]:
    """The targets asked for, in `TARGETS` order, and the servers behind them (not started)."""
    out: list[Target] = []
    servers: list[Server] = []
    proxy: Server | None = None
    for name in TARGETS:
        if name not in names:
            continue
        if name == DIRECT:
            out.append(Target(DIRECT, mock))
        elif name in AGENT_PROXY_WIRES:
            if proxy is None:  # one process serves all three endpoints
                proxy = targets.agent_proxy(mock, scratch)
                servers.append(proxy)
            out.append(Target(name, proxy.url, AGENT_PROXY_WIRES[name], proxy, by_agent=True))
        elif name == "relay":
            server = targets.relay(mock)
            servers.append(server)
            out.append(Target(name, server.url, server=server))
        else:
            if name == "portkey":
                target = targets.portkey(install.install_portkey(scratch), mock)
            else:
                target = targets.litellm(install.install_litellm(scratch), mock, scratch)
            assert target.server is not None
            servers.append(target.server)
            out.append(target)
    return out, servers


async def measure(target: Target, load: Load, repetition: int, max_seconds: float) -> Sample:
    config = target.load_config(
        load,
        requests=load.requests,
        duration_s=max_seconds,
        warmup_requests=min(load.concurrency, 20),
        timeout_s=REQUEST_TIMEOUT_S,
    )
    cpu0 = target.server.cpu_seconds() if target.server else 0.0
    result = await run_load(config)
    cpu_ms = None
    if target.server is not None and result.total + result.warmup:
        cpu_ms = (target.server.cpu_seconds() - cpu0) / (result.total + result.warmup) * 1000
    sample = Sample(
        repetition=repetition,
        load=load.key,
        target=target.name,
        ok=result.ok,
        total=result.total,
        requests_per_s=result.requests_per_s,
        ttft_p50_s=result.ttft.get("p50"),
        cpu_ms_per_stream=cpu_ms,
        errors=dict(result.errors),
        tool_saturated=result.tool_saturated,
    )
    ttft = "–" if sample.ttft_p50_s is None else f"{sample.ttft_p50_s * 1000:.1f}"
    print(
        f"rep {repetition + 1} ({load.key}) {target.name:20} ok={result.ok}/{result.total} "
        f"ttft_p50={ttft}ms req/s={result.requests_per_s:.1f} "
        f"cpu/stream={'–' if cpu_ms is None else f'{cpu_ms:.2f}'}ms",
        flush=True,
    )
    return sample


def mock_server() -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "proxy.mock_upstream", "--port", str(port), "--log-level", "WARNING"]
    return Server("mock", argv, port, "/health")


async def run(
    chosen: list[Target], servers: list[Server], loads: list[Load], args: argparse.Namespace
) -> list[Sample]:
    """Wait for the servers, warm each target up, then run the repetitions."""
    # Together: LiteLLM's start-up alone takes half a minute.
    await asyncio.gather(*(server.ready() for server in servers))
    for target in chosen:  # imports, connection pools, JIT: none of it is a stream's cost
        await run_load(target.load_config(LOADS[1], requests=WARMUP_REQUESTS, timeout_s=REQUEST_TIMEOUT_S))
    samples: list[Sample] = []
    for repetition in range(args.repetitions):
        shift = repetition % len(chosen)
        order = chosen[shift:] + chosen[:shift]
        for load in loads:
            for target in order:
                samples.append(await measure(target, load, repetition, args.max_seconds))
    return samples


def versions(names: list[str], scratch: Path) -> list[str]:
    out = [f"agent-proxy {version('agent-proxy')} (aiohttp {version('aiohttp')})"]
    if "portkey" in names:
        node = install.command_version("node", "--version")
        out.append(f"{install.portkey_versions(scratch)} on Node {node}")
    if "litellm" in names:
        python = str(scratch / "litellm" / "bin" / "python")
        code = "import importlib.metadata as m; print(m.version('litellm'))"
        out.append("litellm " + install.command_version(python, "-c", code))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", nargs="+", choices=list(TARGETS), default=list(TARGETS))
    parser.add_argument("--loads", nargs="+", choices=[load.key for load in LOADS], default=["a", "b", "c"])
    parser.add_argument(
        "--requests",
        nargs="+",
        type=int,
        help="measured streams per load and target: one number for all, or one per load "
        f"(default {' '.join(str(load.requests) for load in LOADS)})",
    )
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument(
        "--max-seconds", type=float, default=30.0, help="cap on each load's sending time per target"
    )
    parser.add_argument("--scratch", type=Path, default=ROOT / ".bench-peers", help="where peers install")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks-peers.md")
    args = parser.parse_args()
    loads = [load for load in LOADS if load.key in args.loads]
    if args.requests:
        if len(args.requests) not in (1, len(loads)):
            parser.error(f"--requests takes one number or {len(loads)}, one per load")
        counts = args.requests * len(loads) if len(args.requests) == 1 else args.requests
        loads = [dataclasses.replace(load, requests=n) for load, n in zip(loads, counts, strict=True)]
    if args.repetitions < 1 or any(load.requests < 1 for load in loads):
        parser.error("repetitions and requests must be >= 1")
    args.targets = list(dict.fromkeys([DIRECT, *args.targets]))  # added TTFT is measured against it
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    scratch: Path = args.scratch.resolve()
    scratch.mkdir(parents=True, exist_ok=True)
    mock = mock_server()
    chosen, servers = build(args.targets, scratch, mock.url)  # installs the peers on first use
    servers = [mock, *servers]
    started: list[Server] = []
    try:
        for server in servers:
            started.append(server)
            server.spawn(scratch / "logs")
        load_start = os.getloadavg()[0]
        samples = asyncio.run(run(chosen, servers, loads, args))
        load_end = os.getloadavg()[0]
    finally:
        for server in reversed(started):
            server.stop()
    headers = {t.server.name: t.headers for t in chosen if t.server is not None and t.headers}
    context = Context(
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        machine=machine_summary(),
        load_average=(load_start, load_end),
        versions=versions(args.targets, scratch),
        servers={s.name: s.launch(headers.get(s.name, {})) for s in servers},
        targets={name: label for name, label in TARGETS.items() if name in args.targets},
        loads={load.key: f"{load.label}, {load.requests} streams" for load in loads},
        repetitions=args.repetitions,
        max_seconds=args.max_seconds,
    )
    report = render(samples, context)
    args.out.write_text(report)
    raw = ROOT / "bench-results"
    raw.mkdir(exist_ok=True)
    (raw / f"peers-{int(time.time())}.json").write_bytes(orjson.dumps(samples))
    print(report)


if __name__ == "__main__":
    main()
