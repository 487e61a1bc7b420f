"""The loads and the targets of `make bench-peers`: how each server starts on the mock upstream, and
how the load generator talks to it."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import ROOT, free_port, tree_cpu_seconds, wait_ready

from peers.report import Launch
from proxy.loadtest import LoadConfig
from proxy.loadtest.config import Target as Wire

STOP_TIMEOUT_S = 30


@dataclass(frozen=True)
class Load:
    """One load of the issue: `agent` names agent-proxy's agent, `model` the mock's behaviour that a
    peer passes through as the model name."""

    key: str
    label: str
    concurrency: int
    requests: int
    agent: str
    model: str


LOADS = (
    Load("a", "c=1, 64 chunks, no delay", 1, 300, "fast", "fast?chunks=64"),
    Load("b", "c=50, 64 chunks, no delay", 50, 1000, "fast", "fast?chunks=64"),
    Load("c", "c=200, 64 chunks 10 ms apart", 200, 1000, "paced", "paced?chunks=64&gap_ms=10"),
)

# The shipped defaults (metrics, heartbeats, the stream log line, retries, breaker): only the
# upstream and the agents the loads name.
AGENT_PROXY_CONFIG = """
[upstreams.mock]
base_url = "{mock}/v1"
""" + "".join(
    f'\n[agents.{agent}]\nmodel = "mock:{model}"\n'
    for agent, model in {load.agent: load.model for load in LOADS}.items()
)


class Server:
    """A target's own process on a free loopback port, its output in a log file, stopped by its PID."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        port: int,
        ready_path: str,
        ready_timeout_s: float = 60,
        env: dict[str, str] | None = None,
        config: str | None = None,
        secret: str | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.url = f"http://127.0.0.1:{port}"
        self.ready_path = ready_path
        self.ready_timeout_s = ready_timeout_s
        self.env = env or {}
        self.config = config
        """The config file it reads, as the report shows it."""
        self.secret = secret
        """A credential in its config or requests, which the report does not show."""
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self, logs: Path) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / f"{self.name}.log").open("wb") as log:
            self.process = subprocess.Popen(
                self.argv, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT
            )

    async def ready(self) -> None:
        await wait_ready(self.url + self.ready_path, timeout=self.ready_timeout_s)

    def cpu_seconds(self) -> float:
        assert self.process is not None
        return tree_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_S)

    def launch(self, headers: dict[str, str]) -> Launch:
        """How it was started and addressed, paths relative to the repository, for the report."""
        env = "".join(f"{name}={value} " for name, value in self.env.items())
        command = env + " ".join(self.argv).replace(str(ROOT) + "/", "")
        return Launch(
            self._redact(command),
            None if self.config is None else self._redact(self.config),
            {name: self._redact(value) for name, value in headers.items()},
        )

    def _redact(self, text: str) -> str:
        return text if self.secret is None else text.replace(self.secret, "<random per run>")


@dataclass
class Target:
    """What the load generator drives: a server over one wire, or the mock itself (`server` None)."""

    name: str
    url: str
    wire: Wire = "openai"
    server: Server | None = None
    headers: dict[str, str] = field(default_factory=dict)
    by_agent: bool = False
    """agent-proxy's loads name its agent; every other target gets the mock's model name."""

    def load_config(self, load: Load, **kw: Any) -> LoadConfig:
        return LoadConfig(
            url=self.url,
            target=self.wire,
            agent=load.agent if self.by_agent else load.model,
            headers=self.headers,
            concurrency=load.concurrency,
            **kw,
        )


def agent_proxy(mock: str, scratch: Path) -> Server:
    config = AGENT_PROXY_CONFIG.format(mock=mock)
    path = scratch / "agent-proxy.toml"
    path.write_text(config)
    port = free_port()
    argv = [sys.executable, "-m", "proxy.cli", "serve", "--config", str(path), "--port", str(port)]
    return Server("agent-proxy", argv, port, "/readyz", config=config)


def relay(mock: str) -> Server:
    port = free_port()
    argv = [sys.executable, str(ROOT / "benchmarks" / "relay.py"), "--upstream", mock, "--port", str(port)]
    return Server("relay", argv, port, "/health")


def portkey(start_script: Path, mock: str) -> Target:
    port = free_port()
    loopback = Path(__file__).with_name("loopback.cjs")
    argv = ["node", "--require", str(loopback), str(start_script), f"--port={port}", "--headless"]
    server = Server("portkey", argv, port, "/")
    # The provider and a custom host per request: Portkey's way to reach any OpenAI-compatible server.
    headers = {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": f"{mock}/v1",
        "Authorization": "Bearer unused",
    }
    return Target("portkey", server.url, server=server, headers=headers)


def litellm(command: Path, mock: str, scratch: Path) -> Target:
    # LiteLLM 1.108.7 refuses to start without a master key; each request then carries it.
    key = "sk-bench-" + secrets.token_hex(16)
    models = sorted({load.model for load in LOADS})
    config = {
        "model_list": [
            {
                "model_name": model,
                "litellm_params": {"model": f"openai/{model}", "api_base": f"{mock}/v1", "api_key": "unused"},
            }
            for model in models
        ],
        "general_settings": {"master_key": key},
    }
    path = scratch / "litellm.yaml"
    text = json.dumps(config, indent=2)  # JSON is YAML, and needs no YAML library here
    path.write_text(text)
    port = free_port()
    argv = [str(command), "--config", str(path), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--num_workers", "1"]
    # Its start-up takes some 30 s of a busy 2-core machine. The local cost map: this machine
    # reaches no network, and start-up should not wait for the download to fail.
    server = Server(
        "litellm",
        argv,
        port,
        "/health/liveliness",
        ready_timeout_s=300,
        env={"LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        config=text,
        secret=key,
    )
    return Target("litellm", server.url, server=server, headers={"Authorization": f"Bearer {key}"})
