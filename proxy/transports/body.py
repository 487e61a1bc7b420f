"""A streamed HTTP response body, written straight to the socket in turns (`TurnWriter`).

aiohttp's `StreamResponse.write` costs several Python calls per piece (chunk framing through a
generic writer, size bookkeeping, an optional compressor); writing the frame here cut the proxy's
CPU per 64-event stream by 7-18% (docs/performance.md). After the first piece, which goes
through aiohttp so that the buffered headers leave with it, the pieces are framed here as HTTP/1.1
chunks, those that leave together as one chunk.
"""

from __future__ import annotations

from aiohttp import web

from proxy.transports.turn_writer import TurnWriter


def _chunk(pieces: list[bytes]) -> bytes:
    data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
    return b"%x\r\n%b\r\n" % (len(data), data)


class BodyWriter:
    __slots__ = ("_request", "_response", "_writer")

    def __init__(self, request: web.Request, response: web.StreamResponse) -> None:
        """For `response`, already prepared for `request`."""
        self._request = request
        self._response = response
        self._writer: TurnWriter | None = None

    async def write(self, data: bytes) -> None:
        """Send `data` as the next piece of the body; raises ConnectionError once the client is gone."""
        if self._writer is not None:
            await self._writer.write(data)
            return
        await self._response.write(data)
        transport = self._request.transport
        # HTTP/1.0 has no chunked framing: aiohttp writes those bodies as they are.
        if transport is not None and self._request.writer.chunked:  # type: ignore[attr-defined]
            self._writer = TurnWriter(transport, self._request.writer.drain, _chunk)

    async def end(self) -> None:
        """Send what is pending, then the end of the body."""
        if self._writer is not None:
            self._writer.flush()
        await self._response.write_eof()
