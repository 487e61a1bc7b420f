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


DISCARDED = {"agent_proxy": {"discarded": True}}
"""The metadata that marks content a retry discarded, on the UI protocols' text (Vercel AI's
`providerMetadata`, AG-UI's `metadata`): a UI can strike it through, and it is no model input."""


def is_discarded(metadata: object) -> bool:
    """Whether a client sent back content marked `DISCARDED` (any other shape is not)."""
    mark = metadata.get("agent_proxy") if isinstance(metadata, dict) else None
    return isinstance(mark, dict) and mark.get("discarded") is True
