"""Run `agent-proxy serve` as a real subprocess, as a user would, and find its port from its log."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

LISTENING = re.compile(r"listening on \('127\.0\.0\.1', (\d+)\)")


@dataclass
class Served:
    process: asyncio.subprocess.Process
    url: str
    log: list[str] = field(default_factory=list)

    async def stop(self, timeout: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(timeout):
            return await self.process.wait()


async def start_serve(
    *args: str,
    env: dict[str, str] | None = None,
    program: Sequence[str] = (sys.executable, "-m", "proxy.cli"),
    **streams: Any,
) -> asyncio.subprocess.Process:
    """`agent-proxy serve --port 0 ARGS` started in its own process group (so that a clean-up can
    kill its workers too), its output going to `streams` (`stdout`, `stderr`). `program` is the
    `agent-proxy` command (another installation's, for instance)."""
    return await asyncio.create_subprocess_exec(
        *program,
        "serve",
        "--port",
        "0",
        *args,
        env={**os.environ, **(env or {})},
        start_new_session=True,
        **streams,
    )


@asynccontextmanager
async def serve(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    listening: int = 1,
    program: Sequence[str] = (sys.executable, "-m", "proxy.cli"),
) -> AsyncIterator[Served]:
    """`agent-proxy serve --port 0 ARGS`, yielded once `listening` processes say where they listen."""
    process = await start_serve(
        *args, env=env, program=program, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    assert process.stdout is not None
    log: list[str] = []
    ports: list[str] = []
    reader: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(timeout):
            while len(ports) < listening:
                line = (await process.stdout.readline()).decode()
                if not line:
                    raise RuntimeError("serve exited before listening:\n" + "".join(log))
                log.append(line)
                if match := LISTENING.search(line):
                    ports.append(match.group(1))
        assert len(set(ports)) == 1, ports
        served = Served(process, f"http://127.0.0.1:{ports[0]}", log)
        reader = asyncio.create_task(_drain_log(process.stdout, log))
        yield served
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        if reader is not None:
            await reader


async def _drain_log(stdout: asyncio.StreamReader, log: list[str]) -> None:
    while line := await stdout.readline():
        log.append(line.decode())
