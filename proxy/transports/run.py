"""Non-streaming runs (protocol.md 2): `POST /v1/agents/{agent}/run` answers one JSON object with the
fields of the `end` event, plus `error` when the stream failed.

The run goes through the same `pump` as every streaming transport (so metrics, traces and logs see
it like any other stream); its `send` (`Collector`) only keeps what the answer needs.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from proxy.engine import Engine
from proxy.observability.observer import Observer
from proxy.transports.collect import Collector, error_status, stream_error
from proxy.transports.http import (
    ARRIVED_AT,
    CALLER,
    STREAM_FIELDS,
    read_json_object,
    reject_unknown_fields,
    stream_context,
)
from proxy.transports.pump import pump
from proxy.transports.wire import encode_json


class RunTransport:
    def __init__(self, engine: Engine, observer: Observer) -> None:
        self._engine = engine
        self._observer = observer

    async def post(self, request: web.Request) -> web.Response:
        agent = request.match_info["agent"]
        self._engine.check_agent(agent)
        body = await read_json_object(request)
        reject_unknown_fields(body, STREAM_FIELDS)
        stream = await self._engine.open(
            agent,
            body.get("prompt"),
            body.get("conversation_id"),
            arrived_at=request.get(ARRIVED_AT),
            caller=request.get(CALLER),
        )
        collected = Collector()
        ctx = stream_context(request, stream.id, agent, "run")
        end = await pump(stream, collected, ctx, self._observer, heartbeat_interval=None)
        if end is None:  # pragma: no cover - a collecting send never loses its client
            raise web.HTTPServiceUnavailable()
        answer: dict[str, Any] = end.to_dict()
        del answer["type"], answer["seq"]
        status = 200
        failed = stream_error(end, collected.error)
        if failed is not None:
            answer["error"] = {"code": failed.code, "message": failed.message, "retryable": failed.retryable}
            status = error_status(failed.code)
        return web.Response(body=encode_json(answer), status=status, content_type="application/json")
