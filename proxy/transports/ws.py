"""WebSocket transport (docs/protocol.md 3.3): many streams per socket, `prompt` / `resume` / `cancel` /
`ping` frames."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from proxy.engine import Engine, Stream
from proxy.engine.refusals import Refused
from proxy.events import Event
from proxy.observability.observer import Observer, StreamContext
from proxy.transports.http import CALLER, stream_context
from proxy.transports.pump import pump
from proxy.transports.resume import NOBODY
from proxy.transports.turn_writer import TurnWriter
from proxy.transports.wire import encode_json

PROTOCOL_PING_S = 20.0
"""WebSocket protocol pings: they find dead peers; heartbeat events keep idle intermediaries open."""
CLOSE_TIMEOUT_S = 0.5
"""How long a close waits for the peer's close frame: at shutdown, a peer that never answers must not
hold the process past its drain timeout (Kubernetes kills a pod that overruns its grace period)."""


def _text_frames(payloads: list[bytes]) -> bytes:
    # A server's frames are not masked; the socket is opened with compression off.
    frames = []
    for payload in payloads:
        size = len(payload)
        if size < 126:
            frames.append(bytes((0x81, size)))
        elif size < 0x10000:
            frames.append(struct.pack("!BBH", 0x81, 126, size))
        else:
            frames.append(struct.pack("!BBQ", 0x81, 127, size))
        frames.append(payload)
    return b"".join(frames)


class _FrameWriter(TurnWriter):
    """Text frames written in turns, past aiohttp's per-frame writer; nothing after its close frame."""

    __slots__ = ("_ws",)

    def __init__(
        self, ws: web.WebSocketResponse, transport: asyncio.Transport, drain: Callable[[], Awaitable[None]]
    ) -> None:
        super().__init__(transport, drain, _text_frames)
        self._ws = ws

    def closing(self) -> bool:
        return self._ws.closed or super().closing()


class _Socket:
    """One connected client and the streams it runs."""

    def __init__(self, transport: WSTransport, request: web.Request, ws: web.WebSocketResponse) -> None:
        self.t = transport
        self.request = request
        self.ws = ws
        self.running: dict[str, tuple[Stream | None, asyncio.Task[None]]] = {}
        """Request id -> its stream (None for a resumed one) and the task writing it."""
        self._writer: _FrameWriter | None = None

    async def send(self, payload: dict[str, Any]) -> None:
        if self._writer is None:
            transport = self.request.transport
            if transport is None:
                raise ConnectionResetError("the client closed the connection")
            self._writer = _FrameWriter(self.ws, transport, self.request.writer.drain)
        await self._writer.write(encode_json(payload))

    async def error(
        self, code: str, message: str, request_id: Any = None, retry_after: float | None = None
    ) -> None:
        frame = {
            "type": "error",
            "stream_id": None,
            "request_id": request_id,
            "code": code,
            "message": message,
            "retryable": False,
        }
        if retry_after is not None:
            frame["retry_after_s"] = retry_after
        await self.send(frame)

    async def handle(self, raw: str) -> None:
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            await self.error("bad_request", "the frame is not valid JSON")
            return
        if not isinstance(frame, dict):
            await self.error("bad_request", "a frame must be a JSON object")
            return
        kind = frame.get("type")
        request_id = frame.get("request_id")
        if kind == "ping":
            await self.send({"type": "pong"})
        elif kind == "prompt":
            await self.start(frame, request_id)
        elif kind == "resume":
            await self.resume(frame, request_id)
        elif kind == "cancel":
            running = self.running.get(request_id) if isinstance(request_id, str) else None
            if running is None or running[0] is None:
                await self.error("bad_request", f"no running request {request_id!r} to cancel", request_id)
            else:
                running[0].cancel("cancelled")
        else:
            await self.error("bad_request", "`type` must be prompt, resume, cancel or ping", request_id)

    async def _may_start(self, request_id: Any) -> bool:
        if not isinstance(request_id, str) or not request_id:
            await self.error("bad_request", "`request_id` must be a non-empty string", request_id)
            return False
        if request_id in self.running:
            await self.error("bad_request", f"request {request_id!r} is already running", request_id)
            return False
        if len(self.running) >= self.t.max_streams_per_socket:
            await self.error("too_many_streams", "too many requests running on this socket", request_id)
            return False
        return True

    async def start(self, frame: dict[str, Any], request_id: Any) -> None:
        if not await self._may_start(request_id):
            return
        agent = frame.get("agent")
        if not isinstance(agent, str):
            await self.error("bad_request", "`agent` must be a string", request_id)
            return
        caller = self.request.get(CALLER)
        if caller is not None and not caller.refresh():
            await self.error("unauthorized", "the key of this socket was revoked", request_id)
            return
        arrived = time.monotonic()
        try:
            stream = await self.t.engine.open(
                agent,
                frame.get("prompt"),
                frame.get("conversation_id"),
                arrived_at=arrived,
                caller=caller,
            )
        except Refused as exc:
            # The refusal is this request's last frame: no `start`, so no `end` follows.
            await self.error(exc.code, exc.message, request_id, exc.retry_after)
            return
        ctx = stream_context(self.request, stream.id, agent, "ws", arrived)
        self._spawn(request_id, stream, stream, ctx, self.t.observer, measure=True)

    async def resume(self, frame: dict[str, Any], request_id: Any) -> None:
        if not await self._may_start(request_id):
            return
        stream_id, after = frame.get("stream_id"), frame.get("after_seq", -1)
        if not isinstance(stream_id, str) or not isinstance(after, int) or isinstance(after, bool):
            await self.error(
                "bad_request", "`stream_id` must be a string and `after_seq` an integer", request_id
            )
            return
        try:
            events = await self.t.engine.resume(stream_id, after, self.request.get(CALLER))
        except Refused as exc:
            await self.error(exc.code, exc.message, request_id, exc.retry_after)
            return
        ctx = stream_context(self.request, stream_id, "", "ws")
        self._spawn(request_id, None, events, ctx, NOBODY, measure=False)

    def _spawn(
        self,
        request_id: str,
        stream: Stream | None,
        events: AsyncIterator[Event],
        ctx: StreamContext,
        observer: Observer,
        *,
        measure: bool,
    ) -> None:
        task = asyncio.create_task(self.run(events, request_id, ctx, observer, measure))
        self.running[request_id] = (stream, task)

    async def run(
        self,
        events: AsyncIterator[Event],
        request_id: str,
        ctx: StreamContext,
        observer: Observer,
        measure: bool,
    ) -> None:
        async def send(event: Event) -> None:
            payload = event.to_dict()
            payload["request_id"] = request_id
            await self.send(payload)

        try:
            await pump(
                events, send, ctx, observer, heartbeat_interval=self.t.heartbeat_interval, measure=measure
            )
        finally:
            self.running.pop(request_id, None)

    async def close(self) -> None:
        tasks = [task for _, task in self.running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class WSTransport:
    def __init__(
        self,
        engine: Engine,
        observer: Observer,
        heartbeat_interval: float,
        max_frame_bytes: int,
        max_streams_per_socket: int,
    ) -> None:
        self.engine = engine
        self.observer = observer
        self.heartbeat_interval = heartbeat_interval
        self.max_frame_bytes = max_frame_bytes
        self.max_streams_per_socket = max_streams_per_socket
        self._open: set[web.WebSocketResponse] = set()

    async def close_all(self) -> None:
        """At shutdown, once the drain has ended every stream: close each socket with 1001 (going
        away), so that clients reconnect elsewhere instead of seeing the connection drop (1006)."""
        await asyncio.gather(
            *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"shutting down") for ws in list(self._open))
        )

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        self.engine.check_accepting()
        ws = web.WebSocketResponse(
            heartbeat=PROTOCOL_PING_S,
            max_msg_size=self.max_frame_bytes,
            compress=False,
            timeout=CLOSE_TIMEOUT_S,
        )
        await ws.prepare(request)
        sock = _Socket(self, request, ws)
        self._open.add(ws)
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await sock.handle(msg.data)
                elif msg.type is WSMsgType.BINARY:
                    await sock.error("bad_request", "send JSON text frames")
        except ConnectionError:
            pass  # the client went away mid-reply; its streams are cancelled below
        finally:
            self._open.discard(ws)
            await sock.close()
        return ws
