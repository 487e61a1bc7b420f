"""A minimal incremental Server-Sent Events parser over raw bytes, cheap enough for the hot path."""

from __future__ import annotations

# Name given to a block that held only comment lines (`: keepalive`): OpenAI-style heartbeats.
COMMENT = ":"
# A stream that never sends a blank line must not grow the buffer without bound.
MAX_BUFFER = 16 * 1024 * 1024


class SseError(ValueError):
    """The byte stream is not SSE we can parse (an event larger than MAX_BUFFER)."""


class SseParser:
    """Feed bytes as they arrive; get back the complete events as `(event_name, data)` pairs.

    `event_name` is "" when the block had no `event:` line and `COMMENT` for a comment-only block;
    `data` is the block's `data:` lines joined with newlines (b"" when there were none). `id:` and
    `retry:` lines are ignored: a load generator never reconnects.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        buf = self._buf + data if self._buf else data
        if b"\r" in buf:
            # CRLF line ends; a lone trailing CR waits in the buffer for its LF.
            buf = buf.replace(b"\r\n", b"\n")
        if b"\n\n" not in buf:
            if len(buf) > MAX_BUFFER:
                raise SseError(f"SSE event larger than {MAX_BUFFER} bytes")
            self._buf = buf
            return []
        blocks = buf.split(b"\n\n")
        self._buf = blocks.pop()
        out: list[tuple[str, bytes]] = []
        for block in blocks:
            if not block:
                continue
            name = ""
            payload: bytes | None = None
            comment = False
            for line in block.split(b"\n"):
                if line.startswith(b"data:"):
                    value = line[6:] if line[5:6] == b" " else line[5:]
                    payload = value if payload is None else payload + b"\n" + value
                elif line.startswith(b"event:"):
                    name = line[6:].strip().decode("utf-8", "replace")
                elif line.startswith(b":"):
                    comment = True
            if payload is None and not name:
                if comment:
                    out.append((COMMENT, b""))
                continue
            out.append((name, payload if payload is not None else b""))
        return out

    @property
    def pending(self) -> bytes:
        """Bytes of an event not yet terminated by a blank line."""
        return self._buf
