"""`make bench-peers` without the peers: the byte relay, the process-tree CPU, the agent-proxy config it
runs, and the report's medians."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from bench import cpu_seconds, tree_cpu_seconds
from peers.report import Context, Launch, Sample, cells, render
from peers.targets import AGENT_PROXY_CONFIG, Server
from relay import make_app

from proxy.config import load_settings

# Split across writes as an upstream would, with bytes that a parser would notice: a comment, CRLF,
# a partial event across two writes, non-ASCII.
PIECES = [b": hi\r\n\r\n", b'data: {"a": "\xc3\xa9"', b"}\n\ndata: [DONE]\n\n", b"tail\x00\xff"]


async def upstream_app(seen: list[bytes]) -> web.Application:
    async def completions(request: web.Request) -> web.StreamResponse:
        seen.append(await request.read())
        response = web.StreamResponse(status=201, headers={"Content-Type": "text/event-stream", "X-Up": "1"})
        await response.prepare(request)
        for piece in PIECES:
            await response.write(piece)
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    return app


async def test_the_relay_copies_the_stream_byte_for_byte() -> None:
    seen: list[bytes] = []
    body = b'{"model": "m", "stream": true}'
    async with (
        TestServer(await upstream_app(seen), host="127.0.0.1") as upstream,
        TestServer(make_app(str(upstream.make_url("/"))), host="127.0.0.1") as relay,
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.post(relay.make_url("/v1/chat/completions"), data=body) as resp,
    ):
        received = await resp.read()
        assert resp.status == 201
        assert resp.headers["Content-Type"] == "text/event-stream"
        assert resp.headers["X-Up"] == "1"
    assert received == b"".join(PIECES)
    assert seen == [body]


def test_tree_cpu_counts_the_children() -> None:
    # A parent that starts a child burning 0.3 s of CPU, then idles until it is stopped.
    child = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\nprint(1)"
    parent = (
        f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {child!r}])\ntime.sleep(30)"
    )
    process = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"1\n"  # the child has burnt its CPU
        assert tree_cpu_seconds(process.pid) >= cpu_seconds(process.pid) + 0.25
    finally:
        process.kill()
        process.wait(timeout=10)


def test_agent_proxy_runs_with_the_shipped_defaults(tmp_path: Path) -> None:
    path = tmp_path / "peers.toml"
    path.write_text(AGENT_PROXY_CONFIG.format(mock="http://127.0.0.1:9"))
    settings = load_settings(path)
    for name, field in type(settings).model_fields.items():
        if name not in ("upstreams", "agents"):
            assert getattr(settings, name) == field.get_default(call_default_factory=True), name
    assert sorted(settings.agents) == ["fast", "paced"]


def sample(rep: int, load: str, target: str, ttft_ms: float, cpu: float | None, rps: float) -> Sample:
    return Sample(rep, load, target, 10, 10, rps, ttft_ms / 1000, cpu, errors={} if cpu else {"timeout": 1})


def test_the_report_takes_medians_of_per_repetition_differences() -> None:
    samples = [
        # direct drifts between repetitions; the added TTFT is taken within each one.
        sample(0, "a", "direct", 1.0, None, 500),
        sample(1, "a", "direct", 5.0, None, 400),
        sample(2, "a", "direct", 2.0, None, 450),
        sample(0, "a", "relay", 3.0, 2.0, 300),
        sample(1, "a", "relay", 7.5, 9.0, 200),
        sample(2, "a", "relay", 5.0, 1.0, 250),
        sample(0, "b", "relay", 30.0, 1.5, 100),
    ]
    table = cells(samples)
    relay = table[("relay", "a")]
    assert relay.added_ttft_p50_ms is not None
    assert abs(relay.added_ttft_p50_ms - 2.5) < 1e-9  # the median of 2.0, 2.5, 3.0
    assert relay.cpu_ms_per_stream == 2.0
    assert relay.requests_per_s == 250
    assert (relay.ok, relay.total) == (30, 30)
    assert table[("direct", "a")].added_ttft_p50_ms is None
    assert table[("direct", "a")].errors == {"timeout": 3}
    context = Context(
        date="today",
        machine="here",
        versions=["v"],
        load_average=(1.0, 2.0),
        servers={"relay": Launch("python relay.py", headers={"X-Key": "k"})},
        targets={"direct": "direct", "relay": "byte relay", "litellm": "LiteLLM"},
        loads={"a": "c=1", "b": "c=50", "c": "c=200"},
        repetitions=3,
        max_seconds=30,
    )
    text = render(samples, context)
    assert "| byte relay | 2.0 / 1.5 / – | 100 | +2.5 ms |" in text
    assert "| direct | – / – / – | – | – |" in text
    assert "| LiteLLM | – / – / – | – | – |" in text
    assert "| byte relay | 30/30 | 5.0 | +2.5 | 250.0 | 2.00 | 0 |" in text
    assert "relay: `python relay.py`\n\nEach request to it carries `X-Key: k`." in text


def test_the_report_shows_no_credential() -> None:
    server = Server(
        "x", ["serve", "--key", "s3cret"], 1, "/", env={"A": "1"}, config="k: s3cret", secret="s3cret"
    )
    launch = server.launch({"Authorization": "Bearer s3cret"})
    assert launch.command == "A=1 serve --key <random per run>"
    assert launch.config == "k: <random per run>"
    assert launch.headers == {"Authorization": "Bearer <random per run>"}
