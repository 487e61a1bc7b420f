"""The WebSocket target: `GET /v1/ws`, a pool of sockets each multiplexing requests (protocol.md 3.3)."""

from __future__ import annotations

import asyncio
import contextlib
from time import perf_counter
from typing import Any

import aiohttp
import orjson

from proxy.loadtest.clients.base import WireClient, handle_event
from proxy.loadtest.config import LoadConfig
from proxy.loadtest.record import TRUNCATED, RequestRecord


class _WsStream:
    __slots__ = ("done", "rec")

    def __init__(self, rec: RequestRecord, done: asyncio.Future[None]) -> None:
        self.rec = rec
        self.done = done


class _Socket:
    """One WebSocket carrying up to `capacity` requests at once; `active` counts reserved slots."""

    __slots__ = ("active", "closed", "free_listed", "reader", "ready", "streams", "ws")

    def __init__(self, ready: asyncio.Future[None]) -> None:
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.ready = ready
        self.streams: dict[str, _WsStream] = {}
        self.active = 0
        self.closed = False
        self.free_listed = False
        self.reader: asyncio.Task[None] | None = None


class WsClient(WireClient):
    """`GET /v1/ws`, protocol.md 3.3: a pool of sockets, each multiplexing up to
    `ws_streams_per_socket` requests, reused across requests. Heartbeats without a `request_id`
    count for every request in flight on that socket."""

    def __init__(self, config: LoadConfig, session: aiohttp.ClientSession) -> None:
        super().__init__(config, session)
        self.url = f"{self.base}/v1/ws"
        self.capacity = config.ws_streams_per_socket
        self._sockets: set[_Socket] = set()
        self._free: list[_Socket] = []
        self._background: set[asyncio.Task[None]] = set()

    async def request(self, rec: RequestRecord, prompt: str) -> None:
        sock = await self._acquire()
        rid = f"r{rec.index}"
        stream = _WsStream(rec, asyncio.get_running_loop().create_future())
        try:
            if sock.closed or sock.ws is None:
                raise aiohttp.ServerDisconnectedError("websocket closed before the prompt was sent")
            rec.status = 101  # the socket's upgrade; failures before it raise instead
            sock.streams[rid] = stream
            frame = {"type": "prompt", "request_id": rid, "agent": self.config.agent, "prompt": prompt}
            await sock.ws.send_str(orjson.dumps(frame).decode())
            await stream.done
        finally:
            if sock.streams.pop(rid, None) is not None and not sock.closed and sock.ws is not None:
                # Gave up (timeout, hard stop) before `end`: tell the server, without waiting.
                self._spawn(self._cancel(sock.ws, rid))
            self._release(sock)

    async def _acquire(self) -> _Socket:
        sock: _Socket | None = None
        while self._free:
            candidate = self._free[-1]
            if candidate.closed:
                self._free.pop()
                candidate.free_listed = False
                continue
            sock = candidate
            break
        if sock is None:
            sock = _Socket(asyncio.get_running_loop().create_future())
            self._sockets.add(sock)
            self._free.append(sock)
            sock.free_listed = True
            self._spawn(self._connect(sock))
        sock.active += 1
        if sock.active >= self.capacity:  # `sock` is the free list's last entry either way
            self._free.pop()
            sock.free_listed = False
        try:
            # Shielded: one waiter giving up must not cancel the connect the others wait for.
            await asyncio.shield(sock.ready)
        except BaseException:
            self._release(sock)
            raise
        return sock

    def _release(self, sock: _Socket) -> None:
        sock.active -= 1
        if not sock.closed and not sock.free_listed and sock.active < self.capacity:
            self._free.append(sock)
            sock.free_listed = True

    async def _connect(self, sock: _Socket) -> None:
        try:
            ws = await self.session.ws_connect(
                self.url,
                headers=self.config.headers,
                autoping=True,
                max_msg_size=0,
                timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
            )
        except asyncio.CancelledError:
            self._discard(sock)
            sock.ready.cancel()
            raise
        except Exception as exc:
            self._discard(sock)
            sock.ready.set_exception(exc)
            sock.ready.exception()  # retrieved here: nobody may be waiting any more
            return
        sock.ws = ws
        sock.reader = asyncio.create_task(self._read(sock, ws))
        sock.ready.set_result(None)

    async def _read(self, sock: _Socket, ws: aiohttp.ClientWebSocketResponse) -> None:
        reason = "websocket closed"
        streams = sock.streams
        try:
            while True:
                msg = await ws.receive()
                t = perf_counter()
                if msg.type is aiohttp.WSMsgType.TEXT or msg.type is aiohttp.WSMsgType.BINARY:
                    obj = orjson.loads(msg.data)
                    if not isinstance(obj, dict):
                        continue
                    etype = obj.get("type")
                    rid = obj.get("request_id")
                    if rid is None:
                        if etype == "heartbeat":
                            for s in streams.values():
                                s.rec.heartbeats += 1
                        continue
                    stream = streams.get(rid)
                    if stream is not None and handle_event(stream.rec, str(etype), t, obj):
                        del streams[rid]
                        if not stream.done.done():
                            stream.done.set_result(None)
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    reason = f"websocket error: {msg.data!r}"
                    break
                else:  # CLOSE, CLOSING, CLOSED
                    reason = f"websocket closed (code {ws.close_code})"
                    break
        except (ValueError, aiohttp.ClientError) as exc:
            reason = f"websocket read failed: {type(exc).__name__}: {exc}"
        finally:
            self._discard(sock)
            now = perf_counter()
            for stream in list(streams.values()):
                stream.rec.ended = now
                stream.rec.fail(TRUNCATED, reason)
                if not stream.done.done():
                    stream.done.set_result(None)
            streams.clear()
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()

    def _discard(self, sock: _Socket) -> None:
        sock.closed = True
        self._sockets.discard(sock)
        if sock.free_listed:
            self._free.remove(sock)
            sock.free_listed = False

    async def _cancel(self, ws: aiohttp.ClientWebSocketResponse, rid: str) -> None:
        with contextlib.suppress(Exception):
            await ws.send_str(orjson.dumps({"type": "cancel", "request_id": rid}).decode())

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        sockets = list(self._sockets)
        for sock in sockets:
            if sock.ws is not None and not sock.ws.closed:
                with contextlib.suppress(Exception):
                    await sock.ws.close()
        readers = [s.reader for s in sockets if s.reader is not None]
        for task in [*readers, *self._background]:
            task.cancel()
        await asyncio.gather(*readers, *self._background, return_exceptions=True)
