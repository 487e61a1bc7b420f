"""A real `redis-server` for the shared-state tests: one per test session, on a free port, in a
temporary directory, stopped by its PID."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

MISSING = (
    "redis-server is not installed: run scripts/ensure-tools.sh redis-server redis-server (as root "
    "it installs Debian's 'redis-server' package). The shared-state tests fail rather than skip without it."
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(MISSING)
    workdir: Path = tmp_path_factory.mktemp("redis")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir), "--save", "",
         "--appendonly", "no", "--protected-mode", "yes"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    log: list[str] = []
    try:
        for line in process.stdout:  # ends when the server exits; a start-up failure says why
            log.append(line)
            if "Ready to accept connections" in line:
                break
        else:
            pytest.fail("redis-server did not start:\n" + "".join(log))
        # Keep reading its log, so that a full pipe never blocks the server.
        threading.Thread(target=process.stdout.read, daemon=True).start()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    """Keys of this test only: tests share the session's server."""
    return f"test:{uuid.uuid4().hex}:"
