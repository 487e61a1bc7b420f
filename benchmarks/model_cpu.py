"""CPU per streamed answer: pydantic-ai's `FunctionModel`, `OpenAIChatModel` (openai SDK) and the lean model.

    .venv/bin/python benchmarks/model_cpu.py [--streams 200] [--rounds 5] [--chunks 64] [--loop uvloop]

Starts the mock upstream in a separate process (`python -m proxy.mock_upstream`), so that only the
client side is measured, then runs `Agent.run_stream_events` to completion, one stream after another,
for each model in turn (the rounds interleave the models, to spread the noise of a shared machine), and
reports the median over the rounds of `time.process_time()` per stream, warm-up excluded. Models are
configured as `proxy/agents.py` configures them (`max_retries=0`, one connection pool per upstream).

Rows: `FunctionModel` (no HTTP: the agent loop alone), `OpenAIChatModel` via the openai SDK,
`LeanOpenAIChatModel`, and the lean transport with pydantic-ai's own stream mapping fed SDK chunk
objects (the alternative design, kept for comparison).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx2
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models import Model, create_async_httpx2_client
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai_compatible import OpenAICompatibleProvider
from pydantic_ai.settings import ModelSettings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from proxy.upstream import LeanOpenAIChatModel, LeanOpenAIProvider  # noqa: E402


class _SDKMappedLeanModel(LeanOpenAIChatModel):
    _sdk_stream_mapping = True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def mock_process(port: int) -> Iterator[str]:
    """The mock upstream in its own process; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.mock_upstream", "--port", str(port), "--log-level", "WARNING"],
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the mock upstream did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(10)


def function_model(chunks: int) -> FunctionModel:
    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        for i in range(chunks):
            yield f"tok{i} " if i < chunks - 1 else f"tok{i}"

    return FunctionModel(stream_function=stream)


async def one_stream(agent: Agent[None, str]) -> None:
    async with agent.run_stream_events("hello there") as events:
        async for _ in events:
            pass


async def cpu_ms_per_stream(agent: Agent[None, str], streams: int) -> float:
    start = time.process_time()
    for _ in range(streams):
        await one_stream(agent)
    return (time.process_time() - start) / streams * 1000


async def run(base_url: str, args: argparse.Namespace) -> list[tuple[str, float, list[float]]]:
    settings = ModelSettings(max_retries=0)
    name = f"bench?chunks={args.chunks}"
    client = create_async_httpx2_client(
        timeout=httpx2.Timeout(None, connect=5),
        limits=httpx2.Limits(max_connections=None, max_keepalive_connections=1000),
    )
    sdk_provider = OpenAICompatibleProvider("mock", base_url=base_url, api_key="sk-bench", http_client=client)
    lean_provider = LeanOpenAIProvider("mock", base_url=base_url, api_key="sk-bench", connect_timeout=5)
    models: dict[str, Model] = {
        "FunctionModel (no HTTP)": function_model(args.chunks),
        "OpenAIChatModel (openai SDK)": OpenAIChatModel(name, provider=sdk_provider, settings=settings),
        "LeanOpenAIChatModel": LeanOpenAIChatModel(name, provider=lean_provider, settings=settings),
        "lean transport + pydantic-ai mapping": _SDKMappedLeanModel(
            name, provider=lean_provider, settings=settings
        ),
    }
    agents = {label: Agent(model) for label, model in models.items()}
    samples: dict[str, list[float]] = {label: [] for label in agents}
    try:
        for agent in agents.values():  # warm-up: imports, connections, caches
            for _ in range(args.warmup):
                await one_stream(agent)
        for _ in range(args.rounds):
            for label, agent in agents.items():
                samples[label].append(await cpu_ms_per_stream(agent, args.streams))
    finally:
        await client.aclose()
        await lean_provider.aclose()
    return [(label, statistics.median(values), values) for label, values in samples.items()]


def table(rows: list[tuple[str, float, list[float]]]) -> str:
    base = rows[0][1]
    sdk = rows[1][1]
    lines = [
        f"{'path':<40} {'CPU ms/stream':>13} {'min..max':>13} {'x FunctionModel':>16} {'x SDK':>7}",
        "-" * 93,
    ]
    for label, median, values in rows:
        spread = f"{min(values):.1f}..{max(values):.1f}"
        lines.append(f"{label:<40} {median:>13.2f} {spread:>13} {median / base:>16.2f} {median / sdk:>7.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=200, help="streams per model per round (default 200)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the median is reported (default 5)")
    parser.add_argument("--warmup", type=int, default=30, help="warm-up streams per model (default 30)")
    parser.add_argument("--chunks", type=int, default=64, help="content chunks per stream (default 64)")
    parser.add_argument(
        "--loop", choices=["uvloop", "asyncio"], default="uvloop", help="event loop (the proxy's: uvloop)"
    )
    parser.add_argument("--port", type=int, default=0, help="port for the mock (default: a free one)")
    args = parser.parse_args(argv)

    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if args.loop == "uvloop":
        import uvloop

        loop_factory = uvloop.new_event_loop
    with (
        mock_process(args.port or _free_port()) as base_url,
        asyncio.Runner(loop_factory=loop_factory) as runner,
    ):
        rows = runner.run(run(base_url, args))
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "loop": args.loop,
        "cpus": os.cpu_count(),
        "streams": f"{args.rounds} rounds x {args.streams}, {args.chunks} chunks, mock in its own process",
    }
    print(" | ".join(f"{k}: {v}" for k, v in info.items()))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
