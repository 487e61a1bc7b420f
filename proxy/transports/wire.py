"""JSON encoding for the wire, in one place (orjson: it is on the per-event hot path)."""

from __future__ import annotations

from typing import Any

import orjson


def _default(value: Any) -> Any:
    # Tool arguments and results may hold objects orjson does not know; send their text.
    return str(value)


def encode_json(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_default)
