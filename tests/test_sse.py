"""SSE transport: the stream protocol as a curl or EventSource user sees it (protocol.md 3.1, 3.2)."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import aiohttp
import orjson

from proxy.mock_upstream import MockServer
from tests.conftest import ProxyFactory, settings_for
from tests.support import assert_stream_invariants, parse_sse_block, post_stream, read_sse


async def test_post_stream_sends_start_deltas_end_with_the_upstream_text(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=6"}))
    result = await post_stream(session, proxy.url, "a", "hello")
    assert result.status == 200
    assert result.headers["Content-Type"] == "text/event-stream"
    assert result.headers["Cache-Control"] == "no-cache"
    assert result.headers["X-Accel-Buffering"] == "no"
    assert result.types() == ["start"] + ["delta"] * 6 + ["end"]
    # `id:` names the stream and the seq, so that a reconnecting EventSource can resume it.
    stream_id = result.events[0].data["stream_id"]
    assert [e.id for e in result.events] == [f"{stream_id}:{i}" for i in range(8)]
    assert [d["text"] for d in result.of("delta")] == ["tok0", " tok1", " tok2", " tok3", " tok4", " tok5"]
    end = result.end
    assert end["text"] == "tok0 tok1 tok2 tok3 tok4 tok5"
    assert end["finish_reason"] == "stop"
    assert end["attempts"] == 1
    assert end["usage"]["output_tokens"] == 6
    assert end["usage"]["requests"] == 1
    assert end["ttft_s"] > 0 and end["duration_s"] >= end["ttft_s"]
    start = result.of("start")[0]
    assert start["agent"] == "a" and start["model"] == "mock:m?chunks=6"
    assert start["conversation_id"] == end["conversation_id"]
    assert_stream_invariants([e.data for e in result.events])


async def test_get_stream_for_event_source(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=3"}))
    async with session.get(f"{proxy.url}/v1/agents/a/stream", params={"prompt": "hi"}) as resp:
        result = await read_sse(resp)
    assert result.types() == ["start", "delta", "delta", "delta", "end"]
    assert result.end["text"] == "tok0 tok1 tok2"


async def test_first_token_arrives_while_the_upstream_still_sleeps_before_the_second(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    # 600 ms between chunks: if the proxy coalesced or buffered, delta 0 would arrive with delta 1.
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=2&gap_ms=600"}))
    result = await post_stream(session, proxy.url, "a", "hi")
    first, second = [e for e in result.events if e.event == "delta"]
    assert first.data["text"] == "tok0"
    assert second.at - first.at > 0.4


async def test_every_chunk_is_forwarded_as_its_own_delta(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=64"}))
    result = await post_stream(session, proxy.url, "a", "hi")
    assert len(result.of("delta")) == 64
    assert result.end["text"] == " ".join(f"tok{i}" for i in range(64))
    assert_stream_invariants([e.data for e in result.events])


async def test_finish_reason_length_is_reported(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=2&finish=length"}))
    result = await post_stream(session, proxy.url, "a", "hi")
    assert result.end["finish_reason"] == "length"


async def test_upstream_sdk_retries_are_off(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    settings = settings_for(mock, {"a": "m?fault=http500"}, retry={"max_attempts": 1})
    proxy = await make_proxy(settings)
    result = await post_stream(session, proxy.url, "a", "hi")
    assert result.types() == ["start", "error", "end"]
    assert mock.stats.total.requests == 1
    assert result.end["attempts"] == 1


async def test_an_http_1_0_client_gets_the_events_unframed_until_the_connection_closes(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    # HTTP/1.0 has no chunked encoding: the body is the bare SSE text, ended by closing the socket.
    proxy = await make_proxy(settings_for(mock, {"a": "m?chunks=5"}))
    url = urlsplit(proxy.url)
    body = orjson.dumps({"prompt": "hi"})
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(
        b"POST /v1/agents/a/stream HTTP/1.0\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    raw = await asyncio.wait_for(reader.read(), 10)  # to EOF
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200")
    assert b"transfer-encoding" not in head.lower()
    assert payload.startswith(b"id: str_")  # no chunk-size line
    assert payload.split(b"\n", 1)[1].startswith(b"event: start\ndata: {")
    assert b"\r" not in payload
    events = [parse_sse_block(block, time.monotonic()) for block in payload.split(b"\n\n") if block]
    assert [e.event for e in events if e is not None] == ["start"] + ["delta"] * 5 + ["end"]
    assert_stream_invariants([e.data for e in events if e is not None])
