"""The engine: (agent, prompt, history) -> an async iterator of stream events. Knows nothing of HTTP."""

from proxy.engine.service import Engine
from proxy.engine.states import StreamState
from proxy.engine.stream import Stream

__all__ = ["Engine", "Stream", "StreamState"]
