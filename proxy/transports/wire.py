"""JSON encoding for the wire, in one place (orjson: it is on the per-event hot path)."""

from __future__ import annotations

from typing import Any

import orjson

from proxy.events import Event


def _default(value: Any) -> Any:
    # Tool arguments and results may hold objects orjson does not know; send their text.
    return str(value)


def encode_json(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_default)


def own_fields(event: Event) -> dict[str, Any]:
    """The event's fields but `type`, `stream_id` and `seq`: for wires whose frames say those
    themselves (the Vercel AI SDK's parts, AG-UI's events)."""
    out = event.to_dict()
    for key in ("type", "stream_id", "seq"):
        out.pop(key, None)
    return out
