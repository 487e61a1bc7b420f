"""WebSocket transport (protocol.md 3.3): many streams per socket, `prompt` / `cancel` / `ping` frames."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from proxy.engine import Engine, Stream
from proxy.errors import RequestError
from proxy.events import Event
from proxy.observability.observer import Observer
from proxy.transports.http import stream_context
from proxy.transports.pump import pump
from proxy.transports.wire import encode_json

PROTOCOL_PING_S = 20.0
"""WebSocket protocol pings: they find dead peers; heartbeat events keep idle intermediaries open."""
CLOSE_TIMEOUT_S = 0.5
"""How long a close waits for the peer's close frame: at shutdown, a peer that never answers must not
hold the process past its drain timeout (Kubernetes kills a pod that overruns its grace period)."""


class _Socket:
    """One connected client and the streams it runs."""

    def __init__(self, transport: WSTransport, request: web.Request, ws: web.WebSocketResponse) -> None:
        self.t = transport
        self.request = request
        self.ws = ws
        self.running: dict[str, tuple[Stream, asyncio.Task[None]]] = {}

    async def send(self, payload: dict[str, Any]) -> None:
        await self.ws.send_frame(encode_json(payload), WSMsgType.TEXT)

    async def error(self, code: str, message: str, request_id: Any = None) -> None:
        await self.send(
            {
                "type": "error",
                "stream_id": None,
                "request_id": request_id,
                "code": code,
                "message": message,
                "retryable": False,
            }
        )

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
        elif kind == "cancel":
            running = self.running.get(request_id) if isinstance(request_id, str) else None
            if running is None:
                await self.error("bad_request", f"no running request {request_id!r}", request_id)
            else:
                running[0].cancel("cancelled")
        else:
            await self.error("bad_request", "`type` must be prompt, cancel or ping", request_id)

    async def start(self, frame: dict[str, Any], request_id: Any) -> None:
        if not isinstance(request_id, str) or not request_id:
            await self.error("bad_request", "`request_id` must be a non-empty string", request_id)
            return
        if request_id in self.running:
            await self.error("bad_request", f"request {request_id!r} is already running", request_id)
            return
        if len(self.running) >= self.t.max_streams_per_socket:
            await self.error("too_many_streams", "too many requests running on this socket", request_id)
            return
        agent = frame.get("agent")
        arrived = time.monotonic()
        try:
            if not isinstance(agent, str):
                raise RequestError(422, "bad_request", "`agent` must be a string")
            stream = self.t.engine.open(
                agent, frame.get("prompt"), frame.get("conversation_id"), arrived_at=arrived
            )
        except RequestError as exc:
            await self.error(exc.code, exc.message, request_id)
            return
        task = asyncio.create_task(self.run(stream, agent, request_id, arrived))
        self.running[request_id] = (stream, task)

    async def run(self, stream: Stream, agent: str, request_id: str, arrived: float) -> None:
        async def send(event: Event) -> None:
            payload = event.to_dict()
            payload["request_id"] = request_id
            await self.send(payload)

        ctx = stream_context(self.request, stream.id, agent, "ws", arrived)
        try:
            await pump(stream, send, ctx, self.t.observer, heartbeat_interval=self.t.heartbeat_interval)
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
        if self.engine.draining:
            raise RequestError(503, "draining", "the proxy is shutting down", retry_after=1)
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
