"""Measures the load generator's own cost: CPU per chunk and fidelity at a given stream load.

Starts bench_server.py (loadtest_fixture.py for ws) in another process, so that the two do not
share a core, drives it with `run_load` on uvloop in this one, and prints the client's CPU use
next to what it measured.

    python tests/loadtest/bench_loadtest.py --concurrency 2000 --ttfb-ms 500 --chunks 10 --gap-ms 1000
    python tests/loadtest/bench_loadtest.py --concurrency 100 --chunks 400 --gap-ms 5
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from proxy.loadtest import LoadConfig, run_load


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / 100.0


async def bench(args: argparse.Namespace, url: str, server_pid: int) -> dict[str, object]:
    prompt = f"ttfb_ms={args.ttfb_ms} chunks={args.chunks} gap_ms={args.gap_ms}"
    cfg = LoadConfig(
        url=url,
        target=args.target,
        prompts=[prompt],
        concurrency=args.concurrency,
        requests=args.requests or args.concurrency,
        timeout_s=600.0,
        ws_streams_per_socket=args.ws_streams_per_socket,
        ramp_up_s=args.ramp_up,
    )
    srv0, cpu0, wall0 = _proc_cpu_s(server_pid), _cpu_s(), time.perf_counter()
    result = await run_load(cfg)
    wall, cpu, srv = time.perf_counter() - wall0, _cpu_s() - cpu0, _proc_cpu_s(server_pid) - srv0
    gap = args.gap_ms / 1000
    return {
        "target": args.target,
        "concurrency": args.concurrency,
        "script": prompt,
        "ok": f"{result.ok}/{result.total}",
        "errors": result.errors,
        "offered_chunks_per_s": round(args.concurrency / gap) if gap else None,
        "chunks": result.chunks,
        "chunks_per_s": round(result.chunks_per_s),
        "wall_s": round(wall, 2),
        "client_cpu_s": round(cpu, 2),
        "client_cpu_pct": round(100 * cpu / wall, 1),
        "client_cpu_us_per_chunk": round(1e6 * cpu / max(result.chunks, 1), 1),
        "server_cpu_pct": round(100 * srv / wall, 1),
        "ttft_ms": {k: round(result.ttft[k] * 1000, 1) for k in ("p50", "p99", "max") if k in result.ttft},
        "gap_ms": {k: round(result.itl[k] * 1000, 2) for k in ("p50", "p99", "max") if k in result.itl},
        "loop_lag_ms": {
            k: round(result.tool_loop_lag[k] * 1000, 2)
            for k in ("p50", "p99", "max")
            if k in result.tool_loop_lag
        },
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--target",
        choices=("sse", "openai", "ws"),
        default="sse",
        help="ws runs against the (costlier, aiohttp) loadtest_fixture.py server",
    )
    p.add_argument("--ws-streams-per-socket", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--requests", type=int, default=0, help="default: one per stream slot")
    p.add_argument("--ramp-up", type=float, default=0.0)
    p.add_argument("--ttfb-ms", type=float, default=100)
    p.add_argument("--chunks", type=int, default=100)
    p.add_argument("--gap-ms", type=float, default=10)
    args = p.parse_args()
    script = "loadtest_fixture.py" if args.target == "ws" else "bench_server.py"
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name(script))], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        try:
            import uvloop

            runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
        except ImportError:
            runner = asyncio.Runner()
        with runner:
            out = runner.run(bench(args, url, server.pid))
    finally:
        server.terminate()
        server.wait()
    print(orjson.dumps(out).decode())


if __name__ == "__main__":
    main()
