"""The engine: (agent, prompt, history) -> an async iterator of stream events. Knows nothing of HTTP."""

from proxy.engine.service import Engine
from proxy.engine.stream import Stream, StreamState

__all__ = ["Engine", "Stream", "StreamState"]
