"""A streamed HTTP response body written one piece per event, straight to the socket.

aiohttp's `StreamResponse.write` costs several Python calls per piece (chunk framing through a
generic writer, size bookkeeping, an optional compressor); writing the frame here cut the proxy's
CPU per 64-event stream by 7-18% (docs/performance.md). After the first piece, which goes
through aiohttp so that the buffered headers leave with it, `BodyWriter` frames each piece as an
HTTP/1.1 chunk itself and hands it to the transport in one write. Back-pressure is aiohttp's: past
64 KiB buffered for a slow client, it waits on the writer's `drain()`.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

_HIGH_WATER = 0x10000
"""aiohttp's own limit before a write waits for the client."""


class BodyWriter:
    __slots__ = ("_direct", "_request", "_response", "_transport")

    def __init__(self, request: web.Request, response: web.StreamResponse) -> None:
        """For `response`, already prepared for `request`."""
        self._request = request
        self._response = response
        self._transport: asyncio.Transport | None = None
        self._direct = False

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
        transport.write(b"%x\r\n%b\r\n" % (len(data), data))
        if transport.get_write_buffer_size() > _HIGH_WATER:
            await self._request.writer.drain()
