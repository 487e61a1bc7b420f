"""Server-sent events, decoded from bytes to the `data` payload of each event, cheaply.

Events end at a blank line. The common case, one `data: ...` line per event, costs a split and a
slice; other events go through a line parser that joins their `data` lines with `\\n` and ignores
comments (`:`), `event:`, `id:`, `retry:` and unknown fields, as the SSE specification says.
`\\r\\n` and `\\r` line ends are normalised first, only when a `\\r` is present. An event that the
stream ends in the middle of is dropped, as the specification says (and the openai SDK does).
"""

from __future__ import annotations

_FAST_PREFIX = b"data: "


class SSEDecoder:
    """Feed it the body's bytes as they arrive; it returns the payloads of the events they complete."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        """The `data` payloads of the events completed by `data` (events without data are skipped)."""
        buffer = self._buffer + data if self._buffer else data
        if b"\r" in buffer:
            held = buffer.endswith(b"\r")  # maybe the first half of a `\r\n` split across reads
            if held:
                buffer = buffer[:-1]
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if held:
                buffer += b"\r"
        if b"\n\n" not in buffer:
            self._buffer = buffer
            return []
        events = buffer.split(b"\n\n")
        self._buffer = events.pop()
        payloads = []
        for event in events:
            if event.startswith(_FAST_PREFIX) and b"\n" not in event:
                payloads.append(event[6:])
            elif event:
                payload = _parse_event(event)
                if payload is not None:
                    payloads.append(payload)
        return payloads


def _parse_event(event: bytes) -> bytes | None:
    data: list[bytes] = []
    for line in event.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        if name == b"data":
            data.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(data) if data else None
