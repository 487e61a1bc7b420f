"""`POST /v1/messages/count_tokens`: how many input tokens a Messages request would take.

No upstream of the proxy speaks Anthropic's wire yet, so the answer is an estimate that needs no
upstream (docs/protocol.md): a quarter of the characters of what the model would read (`system`,
`messages`, `tools`, as JSON), plus 1,600 per image (Anthropic's figure for a full-size one)
instead of its base64 data. When an agent's upstream is Anthropic's, `count_tokens` is where that
upstream is to be asked instead.
"""

from __future__ import annotations

import math
from typing import Any, Final

from proxy.transports.wire import encode_json

CHARS_PER_TOKEN: Final = 4
TOKENS_PER_IMAGE: Final = 1600
_COUNTED: Final = ("system", "messages", "tools")


def _images(value: Any) -> tuple[Any, int]:
    """`value` with each image's source left out, and how many images it had."""
    if isinstance(value, list):
        items = [_images(item) for item in value]
        return [item for item, _ in items], sum(n for _, n in items)
    if isinstance(value, dict):
        if value.get("type") == "image":
            return {"type": "image"}, 1
        pairs = {key: _images(item) for key, item in value.items()}
        return {key: item for key, (item, _) in pairs.items()}, sum(n for _, n in pairs.values())
    return value, 0


def count_tokens(body: dict[str, Any]) -> int:
    """The estimated input tokens of a Messages request body (at least 1)."""
    counted, images = _images({key: body[key] for key in _COUNTED if key in body})
    return max(1, math.ceil(len(encode_json(counted)) / CHARS_PER_TOKEN) + images * TOKENS_PER_IMAGE)
