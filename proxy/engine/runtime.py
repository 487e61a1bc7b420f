"""What the engine runs streams on: each configured agent with its models and policies, and the
registry that holds them and the resources they share.

Built from config by `proxy.agents.build_registry`; the engine only reads these, so importing the
engine loads no HTTP client or transport.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from pydantic_ai import Agent, InstrumentationSettings
from pydantic_ai.models import Model
from pydantic_ai.settings import ModelSettings

from proxy.config import RetrySettings, TimeoutSettings


@dataclass(slots=True)
class ModelChoice:
    """One model an agent may run on; `name` is the config string, used in events and metrics."""

    name: str
    model: Model
    finish_in_details: bool = False
    """Whether a complete answer carries `finish_reason` in `provider_details` (OpenAI Chat
    Completions does), so that its absence means the upstream stopped without finishing."""


@dataclass(slots=True)
class AgentRuntime:
    """Everything the engine needs to run streams for one configured agent."""

    name: str
    agent: Agent[None, Any]
    models: list[ModelChoice]
    retry: RetrySettings
    timeouts: TimeoutSettings
    max_tool_calls: int
    allow_system_messages: bool
    structured: bool = False
    """The agent answers with a JSON object (`output` events) rather than text."""
    direct: bool = False
    """No tools and text output: attempts take the direct model stream, not the agent loop."""
    instructions: str | None = None
    model_settings: ModelSettings | None = None
    instrumentation: InstrumentationSettings | None = None


@dataclass(slots=True)
class AgentRegistry:
    """The built agents and what they share; `start()` opens shared connections (MCP servers) once,
    so that streams do not pay for them, and `aclose()` closes everything."""

    agents: dict[str, AgentRuntime]
    connections: list[AbstractAsyncContextManager[Any]] = field(default_factory=list)
    """Entered by `start()`, exited by `aclose()`."""
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Called by `aclose()` (shared HTTP clients)."""
    aliases: list[tuple[str, str]] = field(default_factory=list)
    """(pattern, agent) in config order: the model names clients send that reach an agent."""
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    def resolve(self, model: str) -> str | None:
        """The agent a client's `model` names: an agent's own name, else the first alias matching."""
        if model in self.agents:
            return model
        for pattern, agent in self.aliases:
            if fnmatchcase(model, pattern):
                return agent
        return None

    async def start(self) -> None:
        for connection in self.connections:
            await self._stack.enter_async_context(connection)

    async def aclose(self) -> None:
        await self._stack.aclose()
        for close in self.closers:
            await close()
