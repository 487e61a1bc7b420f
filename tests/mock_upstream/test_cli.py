"""The `mock-upstream` CLI: flags -> default behaviour, and a real process serving until SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from proxy.mock_upstream.cli import behaviour_from_args, register

from .sse import USER

ROOT = Path(__file__).resolve().parents[2]


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["mock-upstream", *argv])


def test_flags_set_default_behaviour() -> None:
    args = _parse(
        "--port", "9200", "--chunks", "64", "--gap-ms", "10", "--fault", "http503", "--fault-times", "2"
    )
    assert (args.host, args.port) == ("127.0.0.1", 9200)
    b = behaviour_from_args(args)
    assert (b.chunks, b.gap_ms, b.fault, b.fault_times, b.ttfc_ms) == (64, 10.0, "http503", 2, 0.0)
    assert _parse().port == 9100


def test_bad_flag_value_exits_2(capsys: object) -> None:
    args = _parse("--chunks", "lots")
    assert args.func(args) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_cli_process_serves_until_sigint() -> None:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proxy.mock_upstream",
        "--port",
        str(port),
        "--text",
        "from the cli",
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        async with asyncio.timeout(10):
            while b"listening on" not in (line := await proc.stderr.readline()):
                assert line, "mock-upstream exited before listening"
        assert f"http://127.0.0.1:{port}/v1".encode() in line
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/health") as response:
                assert response.status == 200
            async with session.post(
                f"http://127.0.0.1:{port}/v1/chat/completions", json={"model": "cli", "messages": USER}
            ) as response:
                body = await response.json()
        assert body["choices"][0]["message"]["content"] == "from the cli"
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
