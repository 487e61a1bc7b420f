"""Config -> pydantic-ai agents and the models each may run on (primary first, then fallbacks)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import httpx2
from pydantic_ai import Agent
from pydantic_ai.models import Model, create_async_httpx2_client, infer_model
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai_compatible import OpenAICompatibleProvider
from pydantic_ai.settings import ModelSettings

from proxy.config import RetrySettings, Settings, TimeoutSettings


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
    agent: Agent[None, str]
    models: list[ModelChoice]
    retry: RetrySettings
    timeouts: TimeoutSettings
    max_tool_calls: int
    allow_system_messages: bool


@dataclass(slots=True)
class AgentRegistry:
    """The built agents and the HTTP clients they share; `aclose()` at shutdown."""

    agents: dict[str, AgentRuntime]
    http_clients: list[httpx2.AsyncClient] = field(default_factory=list)

    def model_names(self) -> list[str]:
        return sorted({m.name for rt in self.agents.values() for m in rt.models})

    async def aclose(self) -> None:
        for client in self.http_clients:
            await client.aclose()


class ModelBuildError(ValueError):
    """A model string could not be turned into a model."""


def _model_settings() -> ModelSettings:
    # The proxy retries; the SDK's own retries would multiply attempts and hide them from metrics.
    return ModelSettings(max_retries=0)


def build_registry(settings: Settings) -> AgentRegistry:
    """Build every agent of `settings`; raises ModelBuildError naming the agent and model."""
    registry = AgentRegistry(agents={})
    providers: dict[str, OpenAICompatibleProvider] = {}

    def provider_for(upstream: str, timeouts: TimeoutSettings) -> OpenAICompatibleProvider:
        if upstream not in providers:
            cfg = settings.upstreams[upstream]
            key = os.environ.get(cfg.api_key_env, "") if cfg.api_key_env else ""
            client = create_async_httpx2_client(
                timeout=httpx2.Timeout(None, connect=timeouts.connect_s),
                limits=httpx2.Limits(max_connections=None, max_keepalive_connections=1000),
            )
            registry.http_clients.append(client)
            providers[upstream] = OpenAICompatibleProvider(
                upstream, base_url=cfg.base_url, api_key=key or "not-set", http_client=client
            )
        return providers[upstream]

    def model_for(agent: str, name: str, timeouts: TimeoutSettings) -> Model:
        upstream, sep, model_name = name.partition(":")
        if sep and upstream in settings.upstreams:
            return OpenAIChatModel(
                model_name, provider=provider_for(upstream, timeouts), settings=_model_settings()
            )
        try:
            return infer_model(name)
        except Exception as exc:
            raise ModelBuildError(f"agents.{agent}: cannot build model {name!r}: {exc}") from exc

    for name, cfg in settings.agents.items():
        timeouts = settings.timeouts_for(name)
        models = []
        for model_name in [cfg.model, *cfg.fallback_models]:
            model = model_for(name, model_name, timeouts)
            models.append(ModelChoice(model_name, model, isinstance(model, OpenAIChatModel)))
        agent: Agent[None, str] = Agent(
            models[0].model,
            name=name,
            instructions=cfg.instructions,
            retries={"output": cfg.output_retries},
            model_settings=_model_settings(),
        )
        registry.agents[name] = AgentRuntime(
            name=name,
            agent=agent,
            models=models,
            retry=settings.retry_for(name),
            timeouts=timeouts,
            max_tool_calls=cfg.max_tool_calls,
            allow_system_messages=cfg.allow_system_messages,
        )
    return registry
