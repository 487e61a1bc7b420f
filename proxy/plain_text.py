"""The plain-text contract between a model's streamed response and a consumer that only wants text.

A streamed response that offers it has a `plain_text_events` flag. A consumer sets it before
iterating and then gets `PlainText` events for the chunks that only add text to the answer (one
event for those that were read together), and pydantic-ai's part events for everything else; the
final `ModelResponse` is the same either way.
The lean model implements it (`proxy/upstream/_streamed_response.py`); the engine's direct path
uses it without depending on any upstream implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(slots=True)
class PlainText:
    """Text the answer's text part grew by, in place of pydantic-ai's part events: each chunk's
    text, in order, for chunks that arrived together."""

    texts: list[str]


@runtime_checkable
class PlainTextSource(Protocol):
    plain_text_events: bool
    """Set before iterating to receive `PlainText` events."""
