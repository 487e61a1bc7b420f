"""Config -> the engine's agent registry: pydantic-ai agents with their models (primary first, then
fallbacks), MCP toolsets and output types, and what they share (HTTP clients, MCP connections).

This is where the proxy's own upstream client (`proxy.upstream`) is chosen, so it lives outside the
engine, which only runs what is built here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from fastmcp.client.transports import StdioTransport
from pydantic_ai import Agent, InstrumentationSettings
from pydantic_ai.capabilities import Instrumentation
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.models import Model, infer_model
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.settings import ModelSettings

from proxy.config import MCPServerSettings, Settings, TimeoutSettings, one_line
from proxy.engine.runtime import AgentRegistry, AgentRuntime, ModelChoice
from proxy.loop_lag import LoopLag
from proxy.structured import SchemaOutput, load_schema
from proxy.upstream import LeanOpenAIChatModel, LeanOpenAIProvider


class ModelBuildError(ValueError):
    """A model string could not be turned into a model."""


_ENV_NAME = re.compile(r"`([A-Z][A-Z0-9_]*)`")
"""How pydantic-ai names the variable a provider needs: "Set the `OPENAI_API_KEY` environment variable"."""


def check_models_and_secrets(settings: Settings) -> tuple[list[str], list[str]]:
    """`key: problem` lines that validation cannot find, without building anything that connects:
    (models that cannot be built and secrets that are set but unusable, secrets whose environment
    variables are unset). `check-config` reports the unset ones as warnings, so that CI can check a
    config without them; `serve` refuses both."""
    problems: list[str] = []
    unset: list[str] = []
    state = settings.state
    if state.backend == "redis" and not os.environ.get(state.redis_url_env):
        unset.append(f'state.redis_url_env: {state.redis_url_env} is not set (for backend = "redis")')
    auth = settings.auth
    if auth.token_secret_env is not None and not os.environ.get(auth.token_secret_env):
        unset.append(f"auth.token_secret_env: {auth.token_secret_env} is not set")
    if (short := auth.short_token_secret()) is not None:
        problems.append(short)
    for name, upstream in settings.upstreams.items():
        if upstream.api_key_env and not os.environ.get(upstream.api_key_env):
            unset.append(f"upstreams.{name}.api_key_env: {upstream.api_key_env} is not set")
    for name, server in settings.mcp_servers.items():
        unset.extend(
            f"mcp_servers.{name}.headers_env.{header}: {variable} is not set"
            for header, variable in server.headers_env.items()
            if not os.environ.get(variable)
        )
    for agent, cfg in settings.agents.items():
        for key, model in [("model", cfg.model), *(("fallback_models", m) for m in cfg.fallback_models)]:
            prefix, sep, _ = model.partition(":")
            if sep and prefix in settings.upstreams:
                continue
            try:
                infer_model(model)
            except Exception as exc:
                if missing := [v for v in _ENV_NAME.findall(str(exc)) if not os.environ.get(v)]:
                    unset.append(f"agents.{agent}.{key}: {', '.join(missing)} is not set (for {model!r})")
                else:
                    problems.append(one_line(f"agents.{agent}.{key}: cannot build model {model!r}: {exc}"))
    return problems, unset


def _model_settings() -> ModelSettings:
    # The proxy retries; the SDK's own retries would multiply attempts and hide them from metrics.
    return ModelSettings(max_retries=0)


def _mcp_toolset(name: str, cfg: MCPServerSettings) -> MCPToolset:
    # A failing tool is reported to the model (outcome "failed") instead of ending the stream.
    # `timeout_s` covers connecting too: pydantic-ai's own 5 s for the handshake is less than a
    # stdio server's start-up on a busy machine.
    common: dict[str, Any] = {
        "id": name,
        "tool_error_behavior": "failed",
        "read_timeout": cfg.timeout_s,
        "init_timeout": cfg.timeout_s,
    }
    if cfg.command is not None:
        env = {"PATH": os.environ.get("PATH", ""), **cfg.env}
        transport = StdioTransport(
            command=cfg.command, args=cfg.args, env=env, cwd=cfg.cwd, log_file=Path(os.devnull)
        )
        return MCPToolset(transport, **common)
    assert cfg.url is not None
    headers = {header: os.environ.get(var, "") for header, var in cfg.headers_env.items()}
    return MCPToolset(cfg.url, headers=headers or None, **common)


def build_registry(
    settings: Settings, instrumentation: InstrumentationSettings | None = None, lag: LoopLag | None = None
) -> AgentRegistry:
    """Build every agent of `settings`; raises ModelBuildError naming the agent and model.

    With `instrumentation`, pydantic-ai's own spans (`invoke_agent`, `chat`, `execute_tool`) are
    recorded through it, under the proxy's stream and attempt spans. With `lag`, the upstreams'
    connect timeouts do not count the time the event loop lagged."""
    registry = AgentRegistry(agents={})
    providers: dict[tuple[str, float], LeanOpenAIProvider] = {}
    toolsets: dict[str, MCPToolset] = {}

    def provider_for(upstream: str, timeouts: TimeoutSettings) -> LeanOpenAIProvider:
        # The connect timeout belongs to the provider's connection pool, so agents with different
        # `connect_s` on one upstream need a provider each.
        cache_key = (upstream, timeouts.connect_s)
        if cache_key not in providers:
            cfg = settings.upstreams[upstream]
            key = os.environ.get(cfg.api_key_env, "") if cfg.api_key_env else ""
            provider = LeanOpenAIProvider(
                upstream, base_url=cfg.base_url, api_key=key, connect_timeout=timeouts.connect_s, lag=lag
            )
            providers[cache_key] = provider
            registry.closers.append(provider.aclose)
        return providers[cache_key]

    def model_for(agent: str, name: str, timeouts: TimeoutSettings) -> Model:
        upstream, sep, model_name = name.partition(":")
        if sep and upstream in settings.upstreams:
            provider = provider_for(upstream, timeouts)
            return LeanOpenAIChatModel(model_name, provider=provider, settings=_model_settings())
        try:
            return infer_model(name)
        except Exception as exc:
            raise ModelBuildError(f"agents.{agent}: cannot build model {name!r}: {exc}") from exc

    for server, server_cfg in settings.mcp_servers.items():
        toolsets[server] = _mcp_toolset(server, server_cfg)
        registry.connections.append(toolsets[server])

    for name, cfg in settings.agents.items():
        timeouts = settings.timeouts_for(name)
        models = []
        for model_name in [cfg.model, *cfg.fallback_models]:
            model = model_for(name, model_name, timeouts)
            models.append(ModelChoice(model_name, model, isinstance(model, OpenAIChatModel)))
        schema = SchemaOutput(load_schema(cfg.output_schema), cfg.output_name) if cfg.output_schema else None
        agent: Agent[None, Any] = Agent(
            models[0].model,
            name=name,
            instructions=cfg.instructions,
            output_type=schema.output_type if schema else str,
            retries={"output": cfg.output_retries},
            model_settings=_model_settings(),
            toolsets=[toolsets[s] for s in cfg.mcp_servers],
            capabilities=[Instrumentation(settings=instrumentation)] if instrumentation else None,
        )
        if schema is not None:
            agent.output_validator(schema.validate)
        registry.aliases.extend((pattern, name) for pattern in cfg.aliases)
        registry.agents[name] = AgentRuntime(
            name=name,
            agent=agent,
            models=models,
            retry=settings.retry_for(name),
            timeouts=timeouts,
            max_tool_calls=cfg.max_tool_calls,
            allow_system_messages=cfg.allow_system_messages,
            structured=schema is not None,
            direct=schema is None and not cfg.mcp_servers,
            instructions=cfg.instructions,
            model_settings=_model_settings(),
            instrumentation=instrumentation,
        )
    return registry
