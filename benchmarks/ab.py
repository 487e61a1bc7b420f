"""The proxy's CPU per stream against a previous version of itself, measured side by side in one run.

    .venv/bin/python benchmarks/ab.py [--base HEAD~1] [--paths sse ws openai] [--rounds 6]
    .venv/bin/python benchmarks/ab.py --base HEAD --redis     # memory backend (base) vs Redis (new)
    .venv/bin/python benchmarks/ab.py --base HEAD --redis --base-redis   # both on Redis
    .venv/bin/python benchmarks/ab.py --base HEAD --auth      # no keys (base) vs keys and limits (new)
    .venv/bin/python benchmarks/ab.py --base HEAD --chunks 1  # what a stream costs apart from its chunks

With `--redis` the working tree's proxy keeps its state (conversations, stream logs, leases) in a
redis-server started for the run; the base keeps it in memory. Redis's memory after the load is
printed, and whether every key it holds expires. `--auth` runs the working tree with
`[auth] mode = "keys"` (one key with limits) and sends that key from both loads.

Checks `--base` out into a temporary git worktree, starts the mock upstream once and two proxies on
it (the base and the working tree, with the same config and the same venv), warms both up, then
alternates the same load between them round by round (the order flips each round), so the noise of a
shared machine falls on both alike. Prints the median proxy CPU per stream (from /proc) and TTFT p50
of each, and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from bench import CONFIG, ROOT, Redis, cpu_seconds, free_port, wait_ready

from proxy.auth.keys import hash_key, new_key
from proxy.loadtest import LoadConfig, run_load
from proxy.loadtest.config import Target


def spawn(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stderr: IO[bytes] | int = subprocess.DEVNULL
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        env={**os.environ, **(env or {})},
    )


AUTH_KEY = new_key()
AUTH_CONFIG = f"""
[auth]
mode = "keys"
[[auth.keys]]
name = "bench"
sha256 = "{hash_key(AUTH_KEY)}"
limits = {{ requests_per_minute = 100000000, tokens_per_minute = 100000000000, concurrent_streams = 100000 }}
"""


class Proxy:
    def __init__(
        self,
        name: str,
        tree: Path,
        config: Path,
        headers: dict[str, str],
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # `-m` from the tree's directory: its `proxy` package comes before the editable install's.
        self.process = spawn(
            "-m", "proxy.cli", "serve", "--config", str(config), "--port", str(self.port), cwd=tree, env=env
        )
        self.headers = headers
        self.cpu: list[float] = []
        self.ttft: list[float] = []

    async def measure(self, path: Target, concurrency: int, requests: int) -> None:
        config = LoadConfig(
            url=self.url,
            target=path,
            agent="ab",
            concurrency=concurrency,
            requests=requests,
            headers=self.headers,
        )
        before = cpu_seconds(self.process.pid)
        result = await run_load(config)
        if result.ok != result.total:
            raise RuntimeError(f"{self.name}: {result.total - result.ok} of {result.total} streams failed")
        self.cpu.append((cpu_seconds(self.process.pid) - before) / result.total * 1000)
        self.ttft.append(result.ttft["p50"] * 1000)


async def compare(base_tree: Path, args: argparse.Namespace) -> None:
    mock_port = free_port()
    mock = spawn("-m", "proxy.mock_upstream", "--port", str(mock_port), cwd=ROOT)
    config = Path(tempfile.mkdtemp()) / "ab.toml"
    config.write_text(
        CONFIG.format(base_url=f"http://127.0.0.1:{mock_port}/v1", heartbeat=15, slow_chunks=1)
        + f'\n[agents.ab]\nmodel = "mock:ab?chunks={args.chunks}"\n'
    )
    redis = Redis(tempfile.mkdtemp()) if args.redis else None
    new_env = {"AGENT_PROXY_STATE__BACKEND": "redis", "AGENT_PROXY_REDIS_URL": redis.url} if redis else None
    new_name = "working tree" + (", redis" if redis else "") + (", auth" if args.auth else "")
    new_config, headers = config, {}
    if args.auth:
        new_config = config.with_name("ab-auth.toml")
        new_config.write_text(config.read_text() + AUTH_CONFIG)
        headers = {"Authorization": f"Bearer {AUTH_KEY}"}
    base_env = new_env if args.base_redis else None
    proxies = [
        Proxy(f"base ({args.base})" + (", redis" if base_env else ""), base_tree, config, headers, base_env),
        Proxy(new_name, ROOT, new_config, headers, new_env),
    ]
    try:
        await wait_ready(f"http://127.0.0.1:{mock_port}/health")
        for proxy in proxies:
            await wait_ready(f"{proxy.url}/readyz")
        for path in args.paths:
            for concurrency in args.concurrency:
                for proxy in proxies:
                    proxy.cpu.clear()
                    proxy.ttft.clear()
                    await proxy.measure(path, 8, 100)  # warm-up
                for i in range(args.rounds):
                    for proxy in proxies if i % 2 == 0 else proxies[::-1]:
                        await proxy.measure(path, concurrency, args.requests)
                base, new = (statistics.median(p.cpu) for p in proxies)
                base_ttft, new_ttft = (statistics.median(p.ttft) for p in proxies)
                print(
                    f"{path:6} c={concurrency:<3} CPU ms/stream: base {base:6.2f}  new {new:6.2f}  "
                    f"new/base {new / base:5.2f}   TTFT p50 ms: base {base_ttft:7.2f}  new {new_ttft:7.2f}",
                    flush=True,
                )
        if redis is not None:
            print(redis.summary(), flush=True)
    finally:
        extra = [redis.process] if redis else []
        for process in [mock, *(p.process for p in proxies), *extra]:
            process.terminate()
            process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", default="HEAD~1", help="git revision to compare against")
    parser.add_argument(
        "--paths", nargs="+", default=["sse", "ws", "openai"], choices=["sse", "ws", "openai"]
    )
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 20])
    parser.add_argument("--requests", type=int, default=200, help="streams per round and proxy")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument(
        "--chunks", type=int, default=64, help="chunks per stream (1: a stream's cost apart from its chunks)"
    )
    parser.add_argument(
        "--redis", action="store_true", help="the working tree on Redis-backed state (base: memory)"
    )
    parser.add_argument(
        "--base-redis", action="store_true", help="with --redis: the base on the same Redis too"
    )
    parser.add_argument("--auth", action="store_true", help="the working tree with keys and limits")
    args = parser.parse_args()
    with checked_out(args.base) as tree:
        asyncio.run(compare(tree, args))


@contextmanager
def checked_out(revision: str) -> Iterator[Path]:
    """`revision` in a temporary git worktree, removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), revision], cwd=ROOT, check=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=True)


if __name__ == "__main__":
    main()
