"""The states of a stream and every move between them.

A stream is a state machine; `TRANSITIONS` names every allowed move, and any other is a bug that
ends the stream with `internal_error`:

    admitted -> attempting -> streaming -> ended
                    ^   \\         |
                    |    +--------+--> retrying -----> attempting (same model, after the backoff)
                    |              \\-> falling_back -> attempting (next model) | falling_back (skip)
    any state -> ended (success, failure, cancel, deadline)
    admitted -> retrying (a stream taken over from a lost process: `retry` with `replica_lost`)
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final


class StreamState(StrEnum):
    ADMITTED = "admitted"
    """Accepted by the engine; not iterated yet."""
    ATTEMPTING = "attempting"
    """An upstream attempt runs and has sent no content yet."""
    STREAMING = "streaming"
    """The current attempt has sent content (text, output or tool events)."""
    RETRYING = "retrying"
    """An attempt failed; waiting out the backoff before the next one on the same model."""
    FALLING_BACK = "falling_back"
    """Moving to the next model: the last one's attempts are spent or its circuit is open."""
    ENDED = "ended"


S = StreamState
TRANSITIONS: Final[Mapping[StreamState, frozenset[StreamState]]] = {
    # To `retrying` only when taken over from a lost process: its first event is that `retry`.
    S.ADMITTED: frozenset({S.ATTEMPTING, S.RETRYING, S.FALLING_BACK, S.ENDED}),
    S.ATTEMPTING: frozenset({S.STREAMING, S.RETRYING, S.FALLING_BACK, S.ENDED}),
    S.STREAMING: frozenset({S.RETRYING, S.FALLING_BACK, S.ENDED}),
    S.RETRYING: frozenset({S.ATTEMPTING, S.ENDED}),
    S.FALLING_BACK: frozenset({S.ATTEMPTING, S.FALLING_BACK, S.ENDED}),
    S.ENDED: frozenset(),
}


class InvalidTransition(RuntimeError):
    """A move that `TRANSITIONS` does not allow: a bug in the engine."""
