"""`SSEDecoder`: event payloads from bytes, however the bytes are cut, with the SSE specification's rules."""

from __future__ import annotations

import pytest

from proxy.upstream._sse import SSEDecoder


def decode(stream: bytes, piece: int) -> list[bytes]:
    decoder = SSEDecoder()
    out: list[bytes] = []
    for i in range(0, len(stream), piece):
        out.extend(decoder.feed(stream[i : i + piece]))
    return out


CASES: list[tuple[bytes, list[bytes]]] = [
    (b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n', [b'{"a":1}', b'{"b":2}', b"[DONE]"]),
    (b'data: {"a":1}\r\n\r\ndata: x\r\rdata: y\n\n', [b'{"a":1}', b"x", b"y"]),
    (b": comment\n\n: another\ndata: x\n\n", [b"x"]),
    (b"event: message\nid: 7\nretry: 10\ndata: x\n\n", [b"x"]),
    (b"data: line one\ndata: line two\n\n", [b"line one\nline two"]),
    (b"data:no space\n\ndata:  two spaces\n\n", [b"no space", b" two spaces"]),
    (b"id: 1\n\n: comment only\n\nevent: ping\n\ndata: x\n\n", [b"x"]),
    (b"\n\n\n\ndata: x\n\n\n", [b"x"]),
    (b"unknown: field\ndata\n\n", [b""]),
    (b"data: complete\n\ndata: cut off at the end", [b"complete"]),
    ("data: héllo ✓\n\n".encode(), ["héllo ✓".encode()]),
]


@pytest.mark.parametrize(("stream", "expected"), CASES)
@pytest.mark.parametrize("piece", [1, 2, 3, 7, 1000])
def test_decoder(stream: bytes, expected: list[bytes], piece: int) -> None:
    assert decode(stream, piece) == expected


def test_nothing_until_an_event_is_complete() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: {") == []
    assert decoder.feed(b'"a": 1}\n') == []
    assert decoder.feed(b"\n") == [b'{"a": 1}']
    assert decoder.feed(b"") == []
