"""`serve --workers N`: N processes on one port, and one consistent /metrics view of all of them."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from typing import Any

import aiohttp
import orjson

from tests.serving import serve
from tests.support import post_stream

REQUESTS = 12


def requests_total(exposition: str) -> float:
    pattern = re.compile(r'^agent_proxy_requests_total\{[^}]*agent="demo"[^}]*\} ([0-9.e+]+)$', re.M)
    return sum(float(v) for v in pattern.findall(exposition))


def redis_env(redis_state: dict[str, Any]) -> dict[str, str]:
    """The built-in demo on Redis-backed shared state, through the environment."""
    return {
        "AGENT_PROXY_CONFIG": "",
        "AGENT_PROXY_STATE__BACKEND": "redis",
        "AGENT_PROXY_STATE__KEY_PREFIX": redis_state["key_prefix"],
    }


async def test_several_workers_on_the_memory_backend_refuse_to_start_and_say_why() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy.cli", "serve", "--port", "0", "--workers", "2",
        env={**os.environ, "AGENT_PROXY_CONFIG": ""},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(60):
        output, _ = await process.communicate()
    assert process.returncode == 2
    assert b"--workers 2 needs shared state" in output and b"AGENT_PROXY_REDIS_URL" in output
    assert b"listening on" not in output


async def test_continuations_work_whichever_worker_serves_them(redis_state: dict[str, Any]) -> None:
    async with serve("--workers", "2", env=redis_env(redis_state), listening=2) as served:
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            first = await post_stream(session, served.url, "demo", "hi")
            conversation = first.end["conversation_id"]
            for i in range(8):
                turn = await post_stream(
                    session, served.url, "demo", f"and {i}?", conversation_id=conversation
                )
                assert turn.status == 200
                assert turn.end["finish_reason"] == "stop"
                assert turn.end["conversation_id"] == conversation
        assert await served.stop() == 0
    pids = {orjson.loads(line)["pid"] for line in served.log if '"outcome"' in line}
    assert len(pids) == 2  # both workers served turns of the one conversation


async def test_requests_spread_over_workers_sum_to_r_in_one_scrape(redis_state: dict[str, Any]) -> None:
    async with serve("--workers", "2", env=redis_env(redis_state), listening=2) as served:
        pids: set[int] = set()
        # A new connection per request lets the kernel spread them over the workers.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            for _ in range(REQUESTS):
                result = await post_stream(session, served.url, "demo", "hi")
                assert result.end["finish_reason"] == "stop"
            for _ in range(4):  # every scrape, whichever worker answers it, sees all of them
                async with session.get(f"{served.url}/metrics") as resp:
                    assert resp.status == 200
                    assert requests_total(await resp.text()) == REQUESTS
        assert await served.stop() == 0
    for line in served.log:
        if match := re.search(r"pids \[([0-9, ]+)\]", line):
            pids = {int(p) for p in match.group(1).split(", ")}
    assert len(pids) == 2
    # Both workers served streams (one structured log line per finished stream, with its pid).
    served_by = {orjson.loads(line)["pid"] for line in served.log if '"outcome"' in line}
    assert served_by == pids
