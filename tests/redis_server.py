"""A real `redis-server` for the tests: one per session on a free loopback port, its files in a
temporary directory, stopped by its PID. Missing `redis-server` fails the tests (never skips)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.support import free_port


class RedisServer:
    def __init__(self, directory: Path) -> None:
        path = shutil.which("redis-server")
        if path is None:
            pytest.fail(
                "redis-server is not installed: run scripts/ensure-tools.sh redis-server redis-server "
                "(as root it installs Debian's 'redis-server' package)"
            )
        self._program = path
        self._dir = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10) -> None:
        """Start on the same port, without persistence: a restart loses everything, as with a
        Redis that has none configured."""
        self._process = subprocess.Popen(
            [self._program, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self._dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)  # a process starting up: no event to wait on but its port
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout} s")

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None

    def prefix(self) -> str:
        """A key prefix of its own for one test (tests share the server)."""
        return f"test-{uuid.uuid4().hex[:12]}:"
