"""AWS `application/vnd.amazon.eventstream` framing: a prelude (total length, headers length, CRC32),
string headers, the payload and a CRC32 of the whole message."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping

_STRING = 7  # the header value type of a UTF-8 string


def _headers(headers: Mapping[str, str]) -> bytes:
    out = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack("!B", len(raw_name)) + raw_name
        out += struct.pack("!BH", _STRING, len(raw_value)) + raw_value
    return out


def message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One eventstream message."""
    encoded = _headers(headers)
    prelude = struct.pack("!II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    head = prelude + struct.pack("!I", zlib.crc32(prelude)) + encoded + payload
    return head + struct.pack("!I", zlib.crc32(head))


def event(event_type: str, payload: bytes) -> bytes:
    return message(
        {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}, payload
    )


def exception(exception_type: str, payload: bytes) -> bytes:
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return message(headers, payload)
