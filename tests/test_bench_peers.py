"""`make bench-peers` without the peers: the byte relay and the process-tree CPU."""

from __future__ import annotations

import subprocess
import sys

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from bench import cpu_seconds, tree_cpu_seconds
from relay import make_app

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
