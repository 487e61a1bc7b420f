"""`make bench`: the proxy against a direct baseline, side by side, in one run.

Starts the mock upstream and `agent-proxy serve` as their own processes on free ports, then drives
the loads of issue 6 with the project's load generator: direct to the mock (OpenAI wire) vs through
the proxy (SSE, WebSocket, OpenAI). The proxy's CPU comes from /proc (utime + stime of its process),
its memory from VmRSS. Prints the report and writes it, with the raw numbers, to bench-results/
(untracked); `--write-docs` also rewrites `docs/benchmarks.md`, the tracked report.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from proxy.loadtest import LoadConfig, LoadResult, run_load

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")

CONFIG = """
[server]
heartbeat_interval_s = {heartbeat}
max_concurrent_streams = 8192

[observability]
stream_log = false

[conversations]
# Every SSE/WebSocket stream here starts a throwaway conversation; the default bound (10,000) would
# show up as RSS growth that is the store filling to its bound, not a leak.
max_conversations = 1000

[timeouts]
first_token_s = 120
idle_s = 120
total_s = 900

[upstreams.mock]
base_url = "{base_url}"

[agents.fast]
model = "mock:fast?chunks=64"

[agents.paced]
model = "mock:paced?chunks=64&gap_ms=10"

[agents.slow]
model = "mock:slow?chunks={slow_chunks}&gap_ms=1000"

[agents.slow_warmup]
model = "mock:slow_warmup?chunks=25&gap_ms=1000"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat after the command name (which may hold spaces): [0] is the state, [1] the parent,
    [11] utime, [12] stime, [13] cutime, [14] cstime."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process and of all its descendants (a server that forks workers). Each one's
    cutime + cstime counts its children that already ended, which are no longer in /proc."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat(int(entry.name))
        except OSError:  # it ended since the listing
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        ticks[int(entry.name)] = sum(int(f) for f in fields[11:15])
    total, stack = 0, [pid]
    while stack:  # a tree: each process is visited once
        p = stack.pop()
        total += ticks.get(p, 0)
        stack.extend(children.get(p, ()))
    return total / CLK_TCK


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def wait_ready(url: str, timeout: float = 60) -> None:
    async with asyncio.timeout(timeout), aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)  # the process is still starting


class Redis:
    """A redis-server of the run's own, on a free port, its files in a temporary directory."""

    def __init__(self, directory: str) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                directory,
            ],
            stdout=subprocess.DEVNULL,
        )

    def cli(self, *args: str) -> str:
        return subprocess.run(
            ["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True, check=True
        ).stdout

    def summary(self) -> str:
        """Its memory and keys now; every key must expire."""
        keys = [k for k in self.cli("--scan").split() if k]
        # One redis-cli for all the TTLs (one per key took minutes for 20,000 keys).
        ttls = subprocess.run(
            ["redis-cli", "-p", str(self.port)],
            input="".join(f"TTL {k}\n" for k in keys),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        lasting = [k for k, ttl in zip(keys, ttls, strict=True) if ttl == "-1"]
        return (
            f"redis after the load: RSS {rss_mib(self.process.pid):.1f} MiB, {len(keys)} keys, "
            f"{len(lasting)} without an expiry"
        )


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    url: str


@dataclass
class Row:
    scenario: str
    path: str
    result: LoadResult
    cpu_ms_per_stream: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.1f}"


class Bench:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.rows: list[Row] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        self.redis_summary = ""

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, *args],
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.processes.append(process)
        return process

    async def start(self, heartbeat: float, slow_chunks: int) -> None:
        mock_port, proxy_port = free_port(), free_port()
        self.mock = self.spawn("-m", "proxy.mock_upstream", "--port", str(mock_port))
        self.mock_url = f"http://127.0.0.1:{mock_port}"
        self.config = config = Path(tempfile.mkdtemp()) / "bench.toml"
        config.write_text(
            CONFIG.format(base_url=f"{self.mock_url}/v1", heartbeat=heartbeat, slow_chunks=slow_chunks)
        )
        self.proxy = self.spawn(
            "-m", "proxy.cli", "serve", "--config", str(config), "--port", str(proxy_port)
        )
        self.proxy_url = f"http://127.0.0.1:{proxy_port}"
        await wait_ready(f"{self.mock_url}/health")
        await wait_ready(f"{self.proxy_url}/readyz")
        self.rss_start = rss_mib(self.proxy.pid)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=30)

    async def load(
        self, scenario: str, path: str, *, via: Served | None = None, label: str | None = None, **kw: Any
    ) -> Row:
        """One load on `path` (`direct`: the mock), through `via` (default: the proxy)."""
        proxy = via or Served(self.proxy, self.proxy_url)
        if path == "direct":
            config = LoadConfig(url=self.mock_url, target="openai", **kw)
        else:
            config = LoadConfig(url=proxy.url, target=path, **kw)  # type: ignore[arg-type]
        cpu0 = cpu_seconds(proxy.process.pid)
        result = await run_load(config)
        cpu = cpu_seconds(proxy.process.pid) - cpu0
        row = Row(scenario, label or path, result)
        if path != "direct" and result.ok:
            row.cpu_ms_per_stream = cpu / result.total * 1000
        self.rows.append(row)
        print(
            f"{scenario:40} {path:7} ok={result.ok}/{result.total} ttft_p50={ms(result.ttft.get('p50'))}ms "
            f"cpu/stream={row.cpu_ms_per_stream and round(row.cpu_ms_per_stream, 2)}ms",
            flush=True,
        )
        return row

    async def run(self) -> None:
        n = 0.25 if self.quick else 1.0
        # Heartbeats every 0.5 s: the slow streams (one chunk a second) carry one in every gap.
        await self.start(heartbeat=0.5, slow_chunks=10 if self.quick else 60)
        try:
            # Warm up every path (imports, connection pools), then measure.
            for path in ("direct", "sse", "ws", "openai"):
                agent = "fast?chunks=64" if path == "direct" else "fast"
                await run_load(
                    LoadConfig(
                        url=self.mock_url if path == "direct" else self.proxy_url,
                        target="openai" if path == "direct" else path,  # type: ignore[arg-type]
                        agent=agent,
                        concurrency=8,
                        requests=80,
                    )
                )
            self.rss_warm = rss_mib(self.proxy.pid)
            for scenario, agent, model, conc, reqs in (
                ("(a) c=1, 64 chunks, no delay", "fast", "fast?chunks=64", 1, int(300 * n)),
                ("(b) c=50, 64 chunks, no delay", "fast", "fast?chunks=64", 50, int(2000 * n)),
                (
                    "(c) c=200, 64 chunks 10 ms apart",
                    "paced",
                    "paced?chunks=64&gap_ms=10",
                    200,
                    int(2000 * n),
                ),
            ):
                for path in ("direct", "sse", "ws", "openai"):
                    await self.load(
                        scenario,
                        path,
                        agent=model if path == "direct" else agent,
                        concurrency=conc,
                        requests=reqs,
                        warmup_requests=min(conc, 20),
                    )
            streams = 500 if self.quick else 2000
            # A round at full concurrency first (its 25 s streams outlast the 20 s ramp-up, so all
            # are open at once): the allocator keeps the peak working set of that many streams, and
            # "after warm-up" should compare like with like.
            await run_load(
                LoadConfig(
                    url=self.proxy_url,
                    target="sse",
                    agent="slow_warmup",
                    concurrency=streams,
                    requests=streams,
                    ramp_up_s=20,
                    timeout_s=200,
                )
            )
            self.rss_warm_full = rss_mib(self.proxy.pid)
            for path in ("direct", "sse"):
                row = await self.load(
                    f"(d) {streams} slow streams, 1 chunk/s",
                    path,
                    agent=f"slow?chunks={10 if self.quick else 60}&gap_ms=1000"
                    if path == "direct"
                    else "slow",
                    concurrency=streams,
                    requests=streams,
                    ramp_up_s=20,
                    timeout_s=200,
                )
                if path == "sse":
                    row.extra["heartbeats"] = sum(r.heartbeats for r in row.result.records)
            self.rss_after = rss_mib(self.proxy.pid)
            await self.redis_rows(n)
        finally:
            self.stop()

    async def redis_rows(self, n: float) -> None:
        """(e): the same SSE loads on a second proxy that keeps its state in Redis (stream logs for
        resumption, conversations, leases), alternated with the in-memory proxy, three rounds each."""
        redis = Redis(tempfile.mkdtemp())
        self.processes.append(redis.process)
        port = free_port()
        env = {"AGENT_PROXY_STATE__BACKEND": "redis", "AGENT_PROXY_REDIS_URL": redis.url}
        process = self.spawn(
            "-m", "proxy.cli", "serve", "--config", str(self.config), "--port", str(port), env=env
        )
        on_redis = Served(process, f"http://127.0.0.1:{port}")
        await wait_ready(f"{on_redis.url}/readyz")
        await run_load(LoadConfig(url=on_redis.url, target="sse", agent="fast", concurrency=8, requests=80))
        for conc, reqs in ((1, int(300 * n)), (50, int(2000 * n))):
            scenario = f"(e) state in Redis: SSE, c={conc}, 64 chunks, no delay"
            await self.load(scenario, "direct", agent="fast?chunks=64", concurrency=conc, requests=reqs)
            for i in range(3):
                for proxy, label in ((None, f"sse, memory #{i + 1}"), (on_redis, f"sse, redis #{i + 1}")):
                    await self.load(
                        scenario,
                        "sse",
                        via=proxy,
                        label=label,
                        agent="fast",
                        concurrency=conc,
                        requests=reqs,
                        warmup_requests=min(conc, 20),
                    )
        self.redis_summary = redis.summary()

    def report(self) -> str:
        machine = (
            f"{machine_summary()}, "
            f"pydantic-ai {version('pydantic-ai-slim')}, aiohttp {version('aiohttp')}, "
            f"openai {version('openai')}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        )
        lines = [
            "# Benchmarks",
            "",
            "Generated by `make bench ARGS=--write-docs` (`benchmarks/bench.py`). Machine: " + machine + ".",
            "The mock upstream, the proxy and the load generator each run in their own process on the "
            "same 2 cores, so absolute figures are noisy; compare each proxy row with the `direct` row "
            "of the same load, measured minutes apart in the same run.",
            "Against other gateways (Portkey, LiteLLM) and a byte relay: "
            "[benchmarks-peers.md](benchmarks-peers.md), from `make bench-peers`.",
            "`added TTFT` is the proxy's p50/p99 minus direct's. `CPU/stream` is the proxy process's "
            "CPU (utime+stime from /proc) over the load divided by the streams. ITL mean is "
            "(E2E−TTFT)/(chunks−1) averaged over requests.",
            "",
        ]
        scenarios = list(dict.fromkeys(r.scenario for r in self.rows))
        for scenario in scenarios:
            rows = [r for r in self.rows if r.scenario == scenario]
            direct = next(r for r in rows if r.path == "direct").result
            lines += [
                f"## {scenario}",
                "",
                "| path | ok/total | TTFT p50 ms | TTFT p99 ms | added TTFT p50 / p99 ms "
                "| TTFT p99 vs direct | ITL mean ms | req/s | CPU/stream ms | errors |",
                "|---|---|---|---|---|---|---|---|---|---|",
            ]
            for r in rows:
                res = r.result
                p50, p99 = res.ttft.get("p50") or 0.0, res.ttft.get("p99") or 0.0
                d50, d99 = direct.ttft.get("p50") or 0.0, direct.ttft.get("p99") or 0.0
                added = "–" if r.path == "direct" else f"{ms(p50 - d50)} / {ms(p99 - d99)}"
                ratio = (
                    "–"
                    if r.path == "direct" or not direct.ttft.get("p99")
                    else f"{(p99 or 0) / direct.ttft['p99']:.2f}x"
                )
                errors = ", ".join(f"{k}: {v}" for k, v in res.errors.items()) or "0"
                lines.append(
                    f"| {r.path} | {res.ok}/{res.total} | {ms(p50)} | {ms(p99)} | {added} | {ratio} | "
                    f"{ms(res.itl_mean.get('mean'))} | {res.requests_per_s:.1f} | "
                    f"{'–' if r.cpu_ms_per_stream is None else f'{r.cpu_ms_per_stream:.2f}'} | {errors} |"
                )
            for r in rows:
                if r.extra:
                    lines.append(f"\n{r.path}: " + ", ".join(f"{k} {v}" for k, v in r.extra.items()))
            lines.append("")
        lines += [
            "## Proxy memory (RSS)",
            "",
            "| at start | after a light warm-up | after a warm-up round at (d)'s concurrency "
            "| after all loads | after load vs after the full warm-up |",
            "|---|---|---|---|---|",
            f"| {self.rss_start:.0f} MiB | {self.rss_warm:.0f} MiB | {self.rss_warm_full:.0f} MiB "
            f"| {self.rss_after:.0f} MiB | {(self.rss_after / self.rss_warm_full - 1) * 100:+.0f}% |",
            "",
        ]
        if self.redis_summary:
            lines += [
                "## Redis (e)",
                "",
                "Each `sse, memory` / `sse, redis` pair ran back to back; compare the pairs. The Redis "
                f"server {self.redis_summary.removeprefix('redis ')}.",
                "",
            ]
        return "\n".join(lines)


def machine_summary() -> str:
    """Architecture, cores, CPU model and Python version, for a report's heading."""
    return (
        f"{platform.machine()}, {os.cpu_count()} cores ({_cpu_model()}), Python {platform.python_version()}"
    )


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="smaller loads (a smoke run, not for the record)"
    )
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="also rewrite docs/benchmarks.md, the tracked report (a run for the record)",
    )
    args = parser.parse_args()
    if args.quick and args.write_docs:
        parser.error("--quick loads are too small for the record: --write-docs takes a full run")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    bench = Bench(args.quick)
    asyncio.run(bench.run())
    report = bench.report()
    raw = ROOT / "bench-results"
    raw.mkdir(exist_ok=True)
    stamp = int(time.time())
    written = [raw / f"bench-{stamp}.md"]
    if args.write_docs:
        written.append(ROOT / "docs" / "benchmarks.md")
    for path in written:
        path.write_text(report)
    (raw / f"bench-{stamp}.json").write_bytes(
        orjson.dumps(
            [
                {
                    "scenario": r.scenario,
                    "path": r.path,
                    "cpu_ms_per_stream": r.cpu_ms_per_stream,
                    **r.result.to_dict(records=False),
                }
                for r in bench.rows
            ],
            default=str,
        )
    )
    print(report)
    files = ", ".join(str(path.relative_to(ROOT)) for path in written)
    print(f"\nreport written to {files}", file=sys.stderr)


if __name__ == "__main__":
    main()
