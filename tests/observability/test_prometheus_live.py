"""A real Prometheus scrapes a running proxy under mixed traffic: every dashboard panel query and every
rule expression must then answer with data through Prometheus' HTTP API.

`agent-proxy serve` runs as a subprocess (tracing on, so the TTFT histogram carries trace-id
exemplars) in front of the in-process mock upstream; `prometheus` (Debian's package, see
`scripts/ensure-tools.sh`) scrapes it every second and evaluates the repository's rule files
every second. The traffic comes in two identical waves with a scrape in between, because a series
that first appears with its first increment shows no rate in Prometheus: only the second wave makes
every lazily created series (retries by reason, fallbacks, upstream errors by type, ...) move.

Each wave, over SSE, WebSocket, the OpenAI endpoint and `/run`: plain successes, a retried 500, a
retried 429 with `Retry-After`, a stream dropped after content (restart with discard), a model that
never recovers with a fallback (its circuit opens in the first wave; the second skips it), a model that
never recovers without one (error; its circuit opens too), a 400 (not retried, error), a slow first
token under small heartbeat intervals, a client that leaves mid-stream, and requests of a key capped
at one request per minute (refused with 429 at least once a wave). One more stream stays
open, silent, while the queries run (active streams, heartbeats), and is abandoned at the end.
A second target, `serve --workers 2` with plain successes on fresh connections, checks the
multiprocess view through Prometheus: totals, no counter resets between scrapes, exemplars.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from proxy.auth.keys import hash_key, new_key
from proxy.mock_upstream import MockServer
from proxy.observability.metrics import TRANSPORTS
from tests.support import read_sse

from .conftest import ROOT, require_tool
from .test_dashboard import load as load_dashboard
from .test_dashboard import panels

pytestmark = pytest.mark.timeout(120)

RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
RATE_INTERVAL = "15s"
"""`$__rate_interval`: Grafana makes it at least four scrape intervals; 15 s of 1 s scrapes holds the
second wave and the scrapes before it while the queries run."""
GRAFANA_BUILTINS = {"$__rate_interval": RATE_INTERVAL, "$__interval": "1s", "$__range": "1m"}
DEADLINE_S = 20.0
"""How long the queries may take to show data once the traffic is over."""

# Agents in front of the mock upstream (its model-name keys: proxy/mock_upstream/__init__.py).
AGENTS: dict[str, dict[str, Any]] = {
    "chat": {"model": "mock:chat?chunks=6&gap_ms=5"},
    "flaky": {"model": "mock:flaky?chunks=4&gap_ms=5&fault=http500&fault_times=1"},
    "limited": {"model": "mock:limited?chunks=3&fault=http429&fault_times=1&retry_after=0.05"},
    "dropped": {"model": "mock:dropped?chunks=4&gap_ms=5&fault=drop&after=2&fault_times=1"},
    "backup": {"model": "mock:gone?fault=http503", "fallback_models": ["mock:spare?chunks=3&gap_ms=5"]},
    "broken": {"model": "mock:broken?fault=http502"},
    "invalid": {"model": "mock:invalid?fault=http400"},
    "sleepy": {"model": "mock:sleepy?ttfc_ms=700&chunks=3&gap_ms=5"},
    "slow": {"model": "mock:slow?chunks=400&gap_ms=20"},
    "idle": {"model": "mock:idle?ttfc_ms=60000"},
}
OPEN_CIRCUITS = {"mock:gone?fault=http503", "mock:broken?fault=http502"}
# The traffic runs on `live`; `capped` is held at one request per minute.
LIVE_KEY, CAPPED_KEY = new_key(), new_key()
KEYS = {"live": (LIVE_KEY, ""), "capped": (CAPPED_KEY, "limits = { requests_per_minute = 1 }")}


def tail(path: Path, chars: int = 3000) -> str:
    """The end of a log file (all of it with `chars=0`)."""
    return path.read_text(errors="replace")[-chars:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def toml_value(value: Any) -> str:
    return json.dumps(value)  # strings, numbers, booleans and lists of strings are the same in TOML


def proxy_config(mock: MockServer) -> str:
    lines = [
        "[server]",
        "heartbeat_interval_s = 0.2",
        "drain_timeout_s = 1",
        "[retry]",
        "max_attempts = 2",
        "backoff_initial_s = 0.01",
        "backoff_jitter_s = 0.01",
        "[circuit]",
        "failure_threshold = 2",
        "cooldown_s = 600",
        "[observability]",
        'tracing = "on"',
        'log_format = "json"',
        "[upstreams.mock]",
        f"base_url = {toml_value(mock.base_url)}",
        "[auth]",
        'mode = "keys"',
    ]
    for name, (key, extra) in KEYS.items():
        lines += ["[[auth.keys]]", f'name = "{name}"', f'sha256 = "{hash_key(key)}"', extra]
    for name, spec in AGENTS.items():
        lines.append(f"[agents.{name}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in spec.items()]
    return "\n".join(lines) + "\n"


# --- Prometheus --------------------------------------------------------------------------------


@dataclass
class Sample:
    labels: dict[str, str]
    value: float


class Prometheus:
    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.session = session

    async def api(self, path: str, **params: str) -> Any:
        async with self.session.get(f"{self.url}/api/v1/{path}", params=params) as resp:
            body = await resp.json()
        assert body["status"] == "success", (path, params, body)
        return body["data"]

    async def query(self, expr: str) -> list[Sample]:
        data = await self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [Sample({}, float(data["result"][1]))]
        return [Sample(r["metric"], float(r["value"][1])) for r in data["result"]]

    async def wait_for(
        self, expr: str, ok: Callable[[list[Sample]], bool], deadline: float, what: str = ""
    ) -> list[Sample]:
        """`expr`'s answer once `ok` accepts it; AssertionError with the last answer at the deadline."""
        while True:
            samples = await self.query(expr)
            if ok(samples):
                return samples
            if time.monotonic() > deadline:
                raise AssertionError(f"{what or 'query'}: no acceptable answer\n  {expr}\n  last: {samples}")
            await asyncio.sleep(0.25)

    async def total(self, expr: str) -> float:
        samples = await self.query(expr)
        return sum(s.value for s in samples)


@contextlib.asynccontextmanager
async def run_prometheus(binary: str, workdir: Path, targets: dict[str, str]) -> AsyncIterator[str]:
    """Prometheus scraping `targets` (job: host:port) every second, with the repository's rules and
    exemplar storage; its base URL. The process is killed on the way out, whatever happened."""
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES_DIR / "*.yml")],
        "scrape_configs": [
            {"job_name": job, "metrics_path": "/metrics", "static_configs": [{"targets": [target]}]}
            for job, target in targets.items()
        ],
    }
    config_file = workdir / "prometheus.yml"
    config_file.write_text(json.dumps(config, indent=1))  # JSON is YAML
    log_path = workdir / "prometheus.log"
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--enable-feature=exemplar-storage",
            stdout=log,
            stderr=log,
        )
        try:
            await _wait_ready(url, process, log_path)
            yield url
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 5)
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def _wait_ready(url: str, process: asyncio.subprocess.Process, log_path: Path) -> None:
    deadline = time.monotonic() + 15
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while True:
            if process.returncode is not None:
                pytest.fail(f"prometheus exited with {process.returncode}:\n{tail(log_path)}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{url}/-/ready") as resp:
                    if resp.status == 200:
                        return
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus not ready after 15 s:\n{tail(log_path)}")
            await asyncio.sleep(0.1)


# --- the proxies -------------------------------------------------------------------------------

LISTENING = re.compile(r"listening on \('127\.0\.0\.1', (\d+)\)")


@dataclass
class Served:
    """`agent-proxy serve` in its own process group, its output in a file (no pipe that orphaned
    workers could hold open)."""

    process: asyncio.subprocess.Process
    url: str
    log_path: Path

    @property
    def log(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def stream_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log if '"stream_finished"' in line]


@contextlib.asynccontextmanager
async def serve(config: Path, log_path: Path, *args: str, listening: int = 1) -> AsyncIterator[Served]:
    """`agent-proxy serve --config CONFIG ARGS` on a free port, once `listening` processes listen.

    On the way out the whole process group (parent and workers) gets SIGTERM, then SIGKILL."""
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "proxy.cli", "serve", "--port", "0", "--config", str(config), *args,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(ports := LISTENING.findall(tail(log_path, 0))) < listening:
            if process.returncode is not None or time.monotonic() > deadline:
                pytest.fail(f"serve {' '.join(args)} did not start:\n{tail(log_path)}")
            await asyncio.sleep(0.05)
        assert len(set(ports)) == 1, ports
        yield Served(process, f"http://127.0.0.1:{ports[0]}", log_path)
    finally:
        await stop_group(process)


async def stop_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), 10)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # workers that outlived their parent, or a stuck one
        await process.wait()


# --- traffic -----------------------------------------------------------------------------------


@dataclass
class Seen:
    """One stream as its client saw it."""

    transport: str
    agent: str
    outcome: str
    output_tokens: int = 0
    heartbeats: int = 0


async def sse_stream(session: aiohttp.ClientSession, url: str, agent: str) -> Seen:
    async with session.post(f"{url}/v1/agents/{agent}/stream", json={"prompt": "hello there"}) as resp:
        result = await read_sse(resp)
    assert result.status == 200, (agent, result.body)
    end = result.end
    return Seen(
        "sse", agent, end["finish_reason"], end["usage"]["output_tokens"], len(result.of("heartbeat"))
    )


async def sse_stream_resumed(session: aiohttp.ClientSession, url: str, agent: str) -> Seen:
    """A stream, then the whole of it again from its log (a resumption, not a second request)."""
    async with session.post(f"{url}/v1/agents/{agent}/stream", json={"prompt": "hello there"}) as resp:
        result = await read_sse(resp)
    async with session.get(f"{url}/v1/streams/{result.end['stream_id']}?after=-1") as resp:
        replay = await read_sse(resp)
    assert [e.data for e in replay.events] == [e.data for e in result.events if e.event != "heartbeat"]
    end = result.end
    return Seen(
        "sse", agent, end["finish_reason"], end["usage"]["output_tokens"], len(result.of("heartbeat"))
    )


async def sse_disconnect(session: aiohttp.ClientSession, url: str, agent: str, after: int) -> Seen:
    """A client that reads `after` events, then closes its connection."""
    async with session.post(f"{url}/v1/agents/{agent}/stream", json={"prompt": "hello there"}) as resp:
        result = await read_sse(resp, stop_after=after)
        assert len(result.events) == after, result.events
        assert resp.connection is not None and resp.connection.transport is not None
        resp.connection.transport.abort()
    return Seen("sse", agent, "client_disconnect")


async def ws_streams(session: aiohttp.ClientSession, url: str, agents: list[str]) -> list[Seen]:
    """Several prompts on one socket; each stream's end frame."""
    frames: dict[str, list[dict[str, Any]]] = {str(i): [] for i in range(len(agents))}
    async with session.ws_connect(f"{url}/v1/ws") as ws:
        for rid, agent in zip(frames, agents, strict=True):
            await ws.send_str(
                orjson.dumps({"type": "prompt", "request_id": rid, "agent": agent, "prompt": "hi"}).decode()
            )
        ended = 0
        while ended < len(agents):
            frame = orjson.loads((await ws.receive(timeout=15)).data)
            frames[frame["request_id"]].append(frame)
            ended += frame["type"] == "end"
    seen = []
    for rid, agent in zip(frames, agents, strict=True):
        end = frames[rid][-1]
        assert end["type"] == "end", frames[rid]
        beats = sum(f["type"] == "heartbeat" for f in frames[rid])
        seen.append(Seen("ws", agent, end["finish_reason"], end["usage"]["output_tokens"], beats))
    return seen


async def openai_stream(session: aiohttp.ClientSession, url: str, agent: str) -> Seen:
    body = {
        "model": agent,
        "messages": [{"role": "user", "content": "hello there"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    outcome, tokens, keepalives = "", 0, 0
    async with session.post(f"{url}/v1/chat/completions", json=body) as resp:
        assert resp.status == 200, await resp.text()
        raw = (await resp.read()).decode()
    for block in raw.split("\n\n"):
        if block == ": keepalive":
            keepalives += 1
        elif block.startswith("data: ") and block != "data: [DONE]":
            chunk = json.loads(block[6:])
            if "error" in chunk:
                outcome = "error"
            elif chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            for choice in chunk.get("choices", []):
                outcome = choice.get("finish_reason") or outcome
    return Seen("openai", agent, outcome, tokens, keepalives)


async def openai_complete(session: aiohttp.ClientSession, url: str, agent: str) -> Seen:
    body = {"model": agent, "messages": [{"role": "user", "content": "hello there"}]}
    async with session.post(f"{url}/v1/chat/completions", json=body) as resp:
        answer = await resp.json()
    if resp.status != 200:
        return Seen("openai", agent, "error")
    return Seen("openai", agent, answer["choices"][0]["finish_reason"], answer["usage"]["completion_tokens"])


async def run_once(session: aiohttp.ClientSession, url: str, agent: str) -> Seen:
    async with session.post(f"{url}/v1/agents/{agent}/run", json={"prompt": "hello there"}) as resp:
        answer = await resp.json()
    return Seen("run", agent, answer["finish_reason"], answer["usage"]["output_tokens"])


async def capped_runs(session: aiohttp.ClientSession, url: str) -> list[Seen]:
    """Two runs of the capped key: the streams of those it admitted (at most one a minute)."""
    seen: list[Seen] = []
    refused = 0
    for _ in range(2):
        async with session.post(
            f"{url}/v1/agents/chat/run",
            json={"prompt": "hi"},
            headers={"Authorization": f"Bearer {CAPPED_KEY}"},
        ) as resp:
            answer = await resp.json()
        if resp.status == 429:
            refused += 1
        else:
            seen.append(Seen("run", "chat", answer["finish_reason"], answer["usage"]["output_tokens"]))
    assert refused >= 1
    return seen


async def wave(session: aiohttp.ClientSession, url: str) -> list[Seen]:
    """One round of the mixed traffic, all at once."""
    results = await asyncio.gather(
        *(sse_stream(session, url, a) for a in ("chat", "chat", "flaky", "backup", "broken", "invalid")),
        sse_stream(session, url, "sleepy"),
        sse_disconnect(session, url, "slow", after=4),
        openai_stream(session, url, "chat"),
        openai_stream(session, url, "sleepy"),
        openai_stream(session, url, "invalid"),
        openai_complete(session, url, "chat"),
        run_once(session, url, "chat"),
        capped_runs(session, url),
        ws_streams(session, url, ["chat", "limited", "dropped", "sleepy", "broken"]),
    )
    seen: list[Seen] = []
    for r in results:
        seen.extend(r if isinstance(r, list) else [r])  # type: ignore[list-item]
    return seen


# --- the queries -------------------------------------------------------------------------------


def dashboard_queries(dashboard: dict[str, Any], values: dict[str, str]) -> Iterator[tuple[str, str]]:
    """(panel title/refId, query) for every target, variables substituted."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield f"{panel['title']} [{target['refId']}]", substitute(target["expr"], values)


def substitute(expr: str, values: dict[str, str]) -> str:
    for name, value in sorted(values.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(name, value).replace("${" + name[1:] + "}", value)
    assert "$" not in expr, expr
    return expr


async def variable_values(prom: Prometheus, dashboard: dict[str, Any]) -> dict[str, str]:
    """Grafana's substitution for "All" of each query variable: its `allValue`, else the regex of all
    the values its `label_values(...)` query finds."""
    values = dict(GRAFANA_BUILTINS)
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        assert var["includeAll"], var["name"]
        if var.get("allValue"):
            values["$" + var["name"]] = var["allValue"]
        else:
            selector, label = parse_label_values(var["definition"], values)
            found = await prom.api(f"label/{label}/values", **{"match[]": selector})
            values["$" + var["name"]] = "(" + "|".join(re.escape(v) for v in found) + ")"
    return values


def parse_label_values(definition: str, values: dict[str, str]) -> tuple[str, str]:
    match = re.fullmatch(r"label_values\((.+), (\w+)\)", definition)
    assert match, definition
    return substitute(match.group(1), values), match.group(2)


_COMPARISON = re.compile(r"==|!=|>=|<=|>|<")


def comparisons_to_bool(expr: str) -> str:
    """`a > 0.5` becomes `a > bool 0.5`: the alert's expression without its threshold, which answers
    for every series it compares (0 or 1) rather than only for those over the threshold."""
    out: list[str] = []
    depth, quote, i = 0, "", 0
    while i < len(expr):
        c = expr[i]
        if quote:
            out.append(c)
            if c == "\\":
                out.append(expr[i + 1])
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'`":
            quote = c
            out.append(c)
        elif c in "{[":
            depth += 1
            out.append(c)
        elif c in "}]":
            depth -= 1
            out.append(c)
        elif depth == 0 and (m := _COMPARISON.match(expr, i)):
            out.append(m.group(0))
            if not expr[m.end() :].lstrip().startswith("bool"):
                out.append(" bool")
            i = m.end()
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


QUIET_PANELS = {"Takeovers per second", "State errors per second by operation", "Streams waiting to start"}
"""Panels that are zero while every replica, Redis and the event loop are well: they must answer,
at zero."""


def finite(samples: list[Sample]) -> bool:
    return any(math.isfinite(s.value) for s in samples)


def finite_nonzero(samples: list[Sample]) -> bool:
    return any(math.isfinite(s.value) and s.value != 0 for s in samples)


async def check_all(prom: Prometheus, checks: list[tuple[str, str, Callable[[list[Sample]], bool]]]) -> None:
    """Every (what, expr, ok) until ok or the deadline, concurrently; one failure lists them all."""
    deadline = time.monotonic() + DEADLINE_S
    results = await asyncio.gather(
        *(prom.wait_for(expr, ok, deadline, what) for what, expr, ok in checks), return_exceptions=True
    )
    failures = [str(r) for r in results if isinstance(r, BaseException)]
    assert not failures, f"{len(failures)} of {len(checks)} queries without data:\n" + "\n".join(failures)


# --- the test ----------------------------------------------------------------------------------

SINGLE, WORKERS = "agent-proxy", "agent-proxy-workers"
"""Prometheus jobs: the proxy of the mixed traffic (one process, so its circuit breakers are
deterministic), and `serve --workers 2` (multiprocess metrics, exemplars through side files)."""


@dataclass
class Proxies:
    single: Served
    workers: Served


@pytest.fixture
def prometheus_binary() -> str:
    """Missing, the test fails (with CI=true as without: it never skips) before anything starts."""
    return require_tool("prometheus")


@pytest.fixture
async def proxies(
    prometheus_binary: str,
    mock: MockServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    redis_state: dict[str, Any],
) -> AsyncIterator[Proxies]:
    config = tmp_path / "agent-proxy.toml"
    config.write_text(proxy_config(mock))
    # Several workers need shared state.
    monkeypatch.setenv("AGENT_PROXY_STATE__BACKEND", "redis")
    monkeypatch.setenv("AGENT_PROXY_STATE__KEY_PREFIX", redis_state["key_prefix"])
    # Spans are recorded (trace ids for logs and exemplars) but exported nowhere.
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "PROMETHEUS_MULTIPROC_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    async with (
        serve(config, tmp_path / "single.log") as single,
        serve(config, tmp_path / "workers.log", "--workers", "2", listening=2) as workers,
    ):
        yield Proxies(single, workers)


def total_is(expected: int) -> Callable[[list[Sample]], bool]:
    return lambda samples: len(samples) == 1 and samples[0].value == expected


async def workers_wave(url: str) -> list[Seen]:
    """Plain successes on new connections, which the kernel spreads over the workers."""
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True), headers={"Authorization": f"Bearer {LIVE_KEY}"}
    ) as session:
        return await asyncio.gather(
            *(sse_stream(session, url, "chat") for _ in range(5)),
            sse_stream_resumed(session, url, "chat"),
            openai_stream(session, url, "chat"),
        )


async def test_every_panel_and_rule_has_data_in_a_real_prometheus(
    prometheus_binary: str, proxies: Proxies, mock: MockServer, tmp_path: Path
) -> None:
    started = time.monotonic()
    single, workers = proxies.single, proxies.workers
    targets = {SINGLE: single.url.removeprefix("http://"), WORKERS: workers.url.removeprefix("http://")}
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        asyncio.timeout(90),  # fail as an exception, with every process stopped on the way out
        run_prometheus(prometheus_binary, tmp_path, targets) as prom_url,
        aiohttp.ClientSession(timeout=timeout, headers={"Authorization": f"Bearer {LIVE_KEY}"}) as session,
    ):
        prom = Prometheus(prom_url, session)
        deadline = time.monotonic() + 15

        # The first scrapes: the series created at start-up, at zero, so that the first wave counts.
        await prom.wait_for("sum(up)", total_is(2), deadline, "both targets up")
        for job in targets:
            await prom.wait_for(
                f'count(agent_proxy_requests_total{{job="{job}"}})', finite_nonzero, deadline, job
            )

        first, first_w = await asyncio.gather(wave(session, single.url), workers_wave(workers.url))
        deadline = time.monotonic() + 10
        for job, n in ((SINGLE, len(first)), (WORKERS, len(first_w))):
            await prom.wait_for(f'sum(agent_proxy_requests_total{{job="{job}"}})', total_is(n), deadline, job)
        mock.reset()  # its fault counters: each `fault_times=1` faults once more in the second wave
        second, second_w = await asyncio.gather(wave(session, single.url), workers_wave(workers.url))
        seen, seen_w = first + second, first_w + second_w

        # A silent stream stays open while the queries run: active streams, heartbeats.
        idle = await session.post(f"{single.url}/v1/agents/idle/stream", json={"prompt": "anyone?"})
        try:
            await check_dashboard_and_rules(prom)  # first: the rates look back 15 s
            await check_single(prom, seen, single)
            await check_workers(prom, seen_w, workers)
        finally:
            idle.close()

        # The abandoned stream ends as a client disconnect; nothing is left in progress.
        deadline = time.monotonic() + 10
        await prom.wait_for(
            f'sum(agent_proxy_requests_total{{job="{SINGLE}"}})',
            total_is(len(seen) + 1),
            deadline,
            "abandoned",
        )
        disconnects = f'sum(agent_proxy_client_disconnects_total{{job="{SINGLE}"}})'
        assert await prom.total(disconnects) == 3
        await prom.wait_for("sum(agent_proxy_active_streams)", total_is(0), deadline, "no stream in progress")
    assert time.monotonic() - started < 60


async def check_single(prom: Prometheus, seen: list[Seen], proxy: Served) -> None:
    """What the clients saw is what Prometheus counts."""
    job = f'job="{SINGLE}"'
    await prom.wait_for(
        f"sum(agent_proxy_requests_total{{{job}}})", total_is(len(seen)), time.monotonic() + DEADLINE_S, "all"
    )

    async def by(label: str, expr: str) -> dict[str, float]:
        return {s.labels[label]: s.value for s in await prom.query(f"sum by ({label}) ({expr}) > 0")}

    assert await by("outcome", f"agent_proxy_requests_total{{{job}}}") == Counter(s.outcome for s in seen)
    assert await by("transport", f"agent_proxy_requests_total{{{job}}}") == Counter(s.transport for s in seen)
    output_tokens = await prom.total(f'sum(agent_proxy_tokens_total{{{job}, token_type="output"}})')
    assert output_tokens == sum(s.output_tokens for s in seen)
    # backup: spent its attempts on the primary in the first wave, skipped it (circuit open) in the second
    assert await by("agent", f"agent_proxy_fallbacks_total{{{job}}}") == {"backup": 2}
    circuits = await prom.query(f"agent_proxy_circuit_open{{{job}}} == 1")
    assert {s.labels["model"] for s in circuits} == OPEN_CIRCUITS
    assert all(s.heartbeats >= 2 for s in seen if s.agent == "sleepy"), seen
    heartbeats = await prom.total(f"sum(agent_proxy_heartbeats_total{{{job}}})")
    assert heartbeats >= sum(s.heartbeats for s in seen) > 0
    retries = await by("reason", f"agent_proxy_retries_total{{{job}}}")
    assert {"http_500", "rate_limited", "stream_dropped", "http_503", "http_502"} <= set(retries), retries

    # One stream log line per finished stream; the exemplars' trace ids are those of the streams.
    lines = proxy.stream_lines()
    assert len(lines) == len(seen)
    assert await exemplar_trace_ids(prom, job) <= {line["trace_id"] for line in lines}


async def check_workers(prom: Prometheus, seen: list[Seen], proxy: Served) -> None:
    """`serve --workers 2`: one consistent view of all workers, scrape after scrape, exemplars too."""
    job = f'job="{WORKERS}"'
    assert await prom.total(f"sum(agent_proxy_requests_total{{{job}}})") == len(seen)
    resets = await prom.query(f"resets(agent_proxy_requests_total{{{job}}}[1m]) > 0")
    assert resets == [], resets  # whichever worker answered a scrape, no counter went backwards
    lines = proxy.stream_lines()
    assert len({line["pid"] for line in lines}) == 2, "the kernel gave all connections to one worker"
    # A worker writes its exemplars for the others to merge at most once a second.
    assert await exemplar_trace_ids(prom, job) <= {line["trace_id"] for line in lines}


async def exemplar_trace_ids(prom: Prometheus, selector: str) -> set[str]:
    """The trace ids of the TTFT histogram's exemplars (at least one, within the deadline)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        now = time.time()
        data = await prom.api(
            "query_exemplars",
            query=f"agent_proxy_time_to_first_token_seconds_bucket{{{selector}}}",
            start=str(now - 300),
            end=str(now + 1),
        )
        trace_ids = {e["labels"]["trace_id"] for series in data for e in series["exemplars"]}
        if trace_ids:
            assert all(re.fullmatch(r"[0-9a-f]{32}", t) for t in trace_ids), trace_ids
            return trace_ids
        assert time.monotonic() < deadline, f"no exemplar on the TTFT histogram of {selector}"
        await asyncio.sleep(0.25)


async def check_dashboard_and_rules(prom: Prometheus) -> None:
    dashboard = load_dashboard()
    values = await variable_values(prom, dashboard)
    checks: list[tuple[str, str, Callable[[list[Sample]], bool]]] = [
        (f"panel {what}", expr, finite if what.split(" [")[0] in QUIET_PANELS else finite_nonzero)
        for what, expr in dashboard_queries(dashboard, values)
    ]
    # The variables' drop-downs list what the traffic used.
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            selector, label = parse_label_values(var["definition"], values)
            found = set(await prom.api(f"label/{label}/values", **{"match[]": selector}))
            expected = {
                "agent": set(AGENTS),
                # every transport: their series exist from the start, at zero
                "transport": {str(t) for t in TRANSPORTS},
                "key": set(KEYS),
                # every model that finished an attempt: not `idle`'s yet, but the fallback's
                "model": ({a["model"] for a in AGENTS.values()} - {AGENTS["idle"]["model"]})
                | set(AGENTS["backup"]["fallback_models"]),
            }[label]
            assert found == expected, (var["name"], found ^ expected)

    # Every rule Prometheus loaded from deploy/prometheus/rules/: with data, and healthy.
    rules = [r for g in (await prom.api("rules"))["groups"] for r in g["rules"]]
    in_files = "\n".join(p.read_text() for p in RULES_DIR.glob("*.yml"))
    assert {r["name"] for r in rules} == set(re.findall(r"^\s*- (?:record|alert): ([\w:]+)", in_files, re.M))
    for rule in rules:
        if rule["type"] == "recording":
            checks.append((f"recording rule {rule['name']} (expr)", rule["query"], finite_nonzero))
            checks.append((f"recording rule {rule['name']} (series)", rule["name"], finite_nonzero))
        else:
            checks.append((f"alert {rule['name']}", comparisons_to_bool(rule["query"]), finite))
    await check_all(prom, checks)
    for rule in (r for g in (await prom.api("rules"))["groups"] for r in g["rules"]):
        assert rule["health"] == "ok", rule

    # Alerts as their thresholds stand: the open circuits and the failing agents are pending already.
    pending = await prom.wait_for(
        'ALERTS{alertstate="pending"}',
        lambda s: {"AgentProxyCircuitOpen", "AgentProxyHighErrorRatio"} <= {x.labels["alertname"] for x in s},
        time.monotonic() + 10,
        "pending alerts",
    )
    circuit_alerts = {s.labels["model"] for s in pending if s.labels["alertname"] == "AgentProxyCircuitOpen"}
    assert circuit_alerts == OPEN_CIRCUITS
    error_alerts = {s.labels["agent"] for s in pending if s.labels["alertname"] == "AgentProxyHighErrorRatio"}
    assert {"broken", "invalid"} <= error_alerts
