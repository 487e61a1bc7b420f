"""`agent-proxy serve` as a user runs it: the built-in demo, then a clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import pty
import re
import socket
import subprocess
import sys

import aiohttp
import orjson
import pytest

from tests.serving import serve, start_serve
from tests.support import assert_stream_invariants, post_stream


async def test_demo_serves_every_transport_and_says_so_first(session: aiohttp.ClientSession) -> None:
    async with serve(env={"AGENT_PROXY_CONFIG": ""}) as served:
        first = served.log[0]
        assert "built-in demo" in first
        assert "--config" in first and "AGENT_PROXY_CONFIG" in first
        result = await post_stream(session, served.url, "demo", "hello")
        assert result.types()[0] == "start" and result.types()[-1] == "end"
        assert result.types().count("delta") >= 3
        assert "hello" in result.end["text"]
        assert_stream_invariants([e.data for e in result.events])
        async with session.ws_connect(f"{served.url}/v1/ws") as ws:
            await ws.send_str('{"type": "ping"}')
            assert (await ws.receive_json(timeout=5)) == {"type": "pong"}
        async with session.get(f"{served.url}/readyz") as resp:
            assert resp.status == 200
        assert await served.stop() == 0


SHARED_STATE = {"AGENT_PROXY_STATE__BACKEND": "redis", "AGENT_PROXY_REDIS_URL": "redis://127.0.0.1:9/0"}
"""Several workers need shared state; the taken port is refused before Redis is ever asked."""


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_one_clear_line_and_exit_1(workers: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "proxy.cli", "serve", "--port", str(port), "--workers", workers],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "AGENT_PROXY_CONFIG": "", **(SHARED_STATE if workers == "2" else {})},
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"cannot listen on 127.0.0.1:{port}: address already in use"
    ], result.stderr


def test_version_and_help() -> None:
    version = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "--version"], capture_output=True, text=True, timeout=60
    )
    assert version.returncode == 0
    assert version.stdout.strip() == f"agent-proxy {importlib.metadata.version('agent-proxy')}"
    usage = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "serve", "--help"], capture_output=True, text=True, timeout=60
    )
    assert re.search(r"--host HOST\s+address to listen on", usage.stdout), usage.stdout
    assert re.search(r"--port PORT\s+port to listen on", usage.stdout), usage.stdout
    assert "--log-format {auto,json,text}" in usage.stdout


async def test_logs_are_text_on_a_terminal_and_json_otherwise() -> None:
    # Not a terminal (the pipe of tests.serving): one JSON object per line, as collectors expect.
    async with serve(env={"AGENT_PROXY_CONFIG": ""}) as served:
        assert orjson.loads(served.log[0])["message"].startswith("agent-proxy serving")
        assert await served.stop() == 0
    # A terminal: human-readable lines.
    controller, terminal = pty.openpty()
    process = await start_serve(env={"AGENT_PROXY_CONFIG": ""}, stdout=terminal, stderr=terminal)
    os.close(terminal)
    try:
        with os.fdopen(controller, "rb", buffering=0) as screen:
            first = await asyncio.wait_for(asyncio.to_thread(screen.readline), timeout=60)
    finally:
        process.terminate()
        assert await process.wait() == 0
    assert re.match(rb"^\S+ \S+ INFO agent_proxy: agent-proxy serving the built-in demo", first), first


async def test_a_low_open_file_limit_is_raised_and_a_limit_too_low_for_the_streams_is_said() -> None:
    # Started as many systems start services: a soft limit of 1024 under a higher hard one.
    roomy = ("prlimit", "--nofile=1024:20000", sys.executable, "-m", "proxy.cli")
    async with serve(env={"AGENT_PROXY_CONFIG": ""}, program=roomy) as served:
        assert open_files(served.process.pid) == (20000, 20000)
        assert await served.stop() == 0
    assert not [line for line in served.log if "open-file limit" in line]
    # A hard limit that cannot hold the 4096 streams a process may run (two sockets each).
    tight = ("prlimit", "--nofile=1024:2048", sys.executable, "-m", "proxy.cli")
    async with serve(env={"AGENT_PROXY_CONFIG": ""}, program=tight) as served:
        assert open_files(served.process.pid) == (2048, 2048)
        assert await served.stop() == 0
    warnings = [orjson.loads(line) for line in served.log if "open-file limit" in line]
    assert [w["level"] for w in warnings] == ["WARNING"]
    assert "(2048) fits about 896 concurrent streams" in warnings[0]["message"]
    assert "max_concurrent_streams (4096)" in warnings[0]["message"]


def open_files(pid: int) -> tuple[int, int]:
    """The process's soft and hard open-file limits, from /proc."""
    with open(f"/proc/{pid}/limits") as limits:
        line = next(line for line in limits if line.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    return int(soft), int(hard)
