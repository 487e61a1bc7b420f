"""A client that stops reading does not make the proxy buffer without bound."""

from __future__ import annotations

import asyncio
import socket

from proxy.mock_upstream import MockServer
from tests.conftest import ProxyFactory, settings_for, wait_until
from tests.support import parse_sse_block

CHUNKS = 3_000
WRITE_BUFFER_BOUND = 256 * 1024


async def test_stalled_client_backpressures_the_stream_then_gets_all_of_it(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": f"big?chunks={CHUNKS}&ttfc_ms=300"}))
    port = int(proxy.url.rsplit(":", 1)[1])
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    body = b'{"prompt": "hi"}'
    writer.write(
        b"POST /v1/agents/a/stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    await writer.drain()
    reader._transport.pause_reading()  # type: ignore[attr-defined]  # the client stops reading
    server = proxy.runner.server
    assert server is not None
    # Small kernel buffers on the proxy's side too, so that a few hundred KB show the behaviour.
    await wait_until(lambda: bool(server.connections))
    for handler in server.connections:
        assert handler.transport is not None
        handler.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    def proxy_buffer() -> int:
        return sum(h.transport.get_write_buffer_size() for h in server.connections if h.transport is not None)

    # Once the kernel buffers are full the proxy's own buffer starts to fill; it must stop there.
    await wait_until(lambda: proxy_buffer() > 0, timeout=20)
    assert proxy.engine.active, "the stream should still be running, held back by the client"
    high_water = proxy_buffer()
    assert high_water <= WRITE_BUFFER_BOUND

    reader._transport.resume_reading()  # type: ignore[attr-defined]
    raw = b""
    async with asyncio.timeout(60):
        while not raw.endswith(b"\r\n0\r\n\r\n"):  # the last chunk of chunked transfer encoding
            raw += await reader.read(1 << 20)
            high_water = max(high_water, proxy_buffer())
    writer.close()
    assert high_water <= WRITE_BUFFER_BOUND
    # Chunked transfer encoding frames aside, every delta arrived in order.
    sse = b"".join(raw.split(b"\r\n\r\n", 1)[1].split(b"\r\n")[1::2])
    events = [e for blk in sse.split(b"\n\n") if (e := parse_sse_block(blk, 0.0)) is not None]
    deltas = [e.data["text"] for e in events if e.event == "delta"]
    assert len(deltas) == CHUNKS
    assert "".join(deltas) == events[-1].data["text"]
