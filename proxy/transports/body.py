"""A streamed HTTP response body, written straight to the socket, one write per loop turn.

aiohttp's `StreamResponse.write` costs several Python calls per piece (chunk framing through a
generic writer, size bookkeeping, an optional compressor); writing the frame here cut the proxy's
CPU per 64-event stream by 7-18% (docs/performance.md). After the first piece, which goes
through aiohttp so that the buffered headers leave with it, `BodyWriter` frames the pieces as
HTTP/1.1 chunks itself. The first piece of a turn of the event loop leaves at once; the pieces
that follow it in the same turn (the events of chunks the upstream sent in one read, which were
there at the same moment) leave together, in one chunk and one `send`, at the end of that turn.
Back-pressure is aiohttp's: past 64 KiB buffered for a slow client, a write waits on the writer's
`drain()`.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

_HIGH_WATER = 0x10000
"""aiohttp's own limit before a write waits for the client."""


class BodyWriter:
    __slots__ = ("_direct", "_loop", "_pending", "_pending_size", "_request", "_response", "_transport")

    def __init__(self, request: web.Request, response: web.StreamResponse) -> None:
        """For `response`, already prepared for `request`."""
        self._request = request
        self._response = response
        self._transport: asyncio.Transport | None = None
        self._direct = False
        self._loop = asyncio.get_running_loop()
        self._pending: list[bytes] | None = None
        self._pending_size = 0

    async def write(self, data: bytes) -> None:
        """Send `data` as the next piece of the body; raises ConnectionError once the client is gone."""
        if not self._direct:
            await self._response.write(data)
            transport = self._request.transport
            # HTTP/1.0 has no chunked framing: aiohttp writes those bodies as they are.
            if transport is not None and self._request.writer.chunked:  # type: ignore[attr-defined]
                self._transport, self._direct = transport, True
            return
        transport = self._transport
        assert transport is not None
        if transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        if self._pending is None:
            transport.write(b"%x\r\n%b\r\n" % (len(data), data))
            self._pending = []
            self._loop.call_soon(self._flush)
        else:
            self._pending.append(data)
            self._pending_size += len(data)
        if self._pending_size + transport.get_write_buffer_size() > _HIGH_WATER:
            self._flush()
            await self._request.writer.drain()

    async def end(self) -> None:
        """Send what is pending, then the end of the body."""
        self._flush()
        await self._response.write_eof()

    def _flush(self) -> None:
        pending, self._pending, self._pending_size = self._pending, None, 0
        transport = self._transport
        if not pending or transport is None or transport.is_closing():
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        transport.write(b"%x\r\n%b\r\n" % (len(data), data))
