"""Settings: one TOML file plus `AGENT_PROXY_*` environment overrides, validated with pydantic.

Every model forbids unknown keys, so a typo is an error that names its key rather than a setting
that silently does nothing. `load_settings` turns every problem into `ConfigError`, whose lines read
`FILE: key.path: problem`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from proxy.auth.keys import KeysFileError, load_keys_file
from proxy.auth.settings import AuthSettings, KeySettings, duplicate_key_problems, exposure_problem
from proxy.observability.settings import ObservabilitySettings
from proxy.structured import SchemaLoadError, load_schema

ENV_PREFIX = "AGENT_PROXY_"
CONFIG_ENV = "AGENT_PROXY_CONFIG"
DEMO_UPSTREAM = "demo"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class ServerSettings(Section):
    host: str = "127.0.0.1"
    """Address to listen on."""
    port: int = Field(8080, ge=0, le=65535)
    """Port to listen on (0: any free port)."""
    workers: int = Field(1, ge=1, le=64)
    """Worker processes sharing the port."""
    heartbeat_interval_s: float = Field(15.0, gt=0)
    """Send a heartbeat when nothing else was sent on a stream for this long."""
    max_body_bytes: int = Field(1 << 20, ge=1024)
    """Largest accepted request body (413 above)."""
    max_prompt_chars: int = Field(200_000, ge=1)
    """Longest accepted prompt (413 above)."""
    ws_max_frame_bytes: int = Field(1 << 20, ge=1024)
    """Largest accepted WebSocket frame (the socket is closed with 1009 above)."""
    ws_max_streams_per_socket: int = Field(16, ge=1)
    """Streams one WebSocket may run at once."""
    max_concurrent_streams: int = Field(4096, ge=1)
    """Streams one process runs at once (503 `overloaded` above)."""
    drain_timeout_s: float = Field(30.0, ge=0)
    """On SIGTERM, how long running streams may finish before they end with `shutdown`."""
    cors_allow_origins: list[str] = Field(default_factory=list)
    """Browser origins allowed to call the proxy (`["*"]`: any; the demo allows any)."""


class RetrySettings(Section):
    max_attempts: int = Field(3, ge=1, le=20)
    """Attempts per model, the first included."""
    backoff_initial_s: float = Field(0.2, ge=0)
    """First backoff; doubles per attempt."""
    backoff_max_s: float = Field(5.0, ge=0)
    """Longest backoff."""
    backoff_jitter_s: float = Field(0.2, ge=0)
    """Random extra wait, up to this."""
    retry_after_cap_s: float = Field(30.0, ge=0)
    """Longest upstream `Retry-After` honoured."""
    mid_stream: Literal["restart", "fail"] = "restart"
    """After content was sent: `restart` (retry with `discard: true`) or `fail` (error + end)."""


class TimeoutSettings(Section):
    connect_s: float = Field(5.0, gt=0)
    """Per attempt: opening the upstream connection."""
    first_token_s: float = Field(30.0, gt=0)
    """Per attempt: until the upstream's first event."""
    idle_s: float = Field(30.0, gt=0)
    """Per attempt: longest gap between upstream events."""
    total_s: float = Field(600.0, gt=0)
    """Per stream: everything, retries and fallbacks included."""


class CircuitSettings(Section):
    failure_threshold: int = Field(5, ge=1)
    """Consecutive upstream failures that open a model's circuit."""
    cooldown_s: float = Field(30.0, gt=0)
    """How long an open circuit waits before letting one probe through (half-open)."""


class ConversationSettings(Section):
    max_conversations: int = Field(10_000, ge=1)
    """Conversations kept in memory (least recently used dropped first)."""
    idle_ttl_s: float = Field(3600.0, gt=0)
    """A conversation unused for this long is forgotten."""


class UpstreamSettings(Section):
    base_url: str
    """OpenAI-compatible base URL, e.g. `http://127.0.0.1:9100/v1`."""
    api_key_env: str | None = None
    """Name of the environment variable that holds the API key (never the key itself)."""

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class MCPServerSettings(Section):
    """An MCP server: `command` (stdio) or `url` (streamable HTTP)."""

    command: str | None = None
    """Stdio: the program to start."""
    args: list[str] = Field(default_factory=list)
    """Stdio: its arguments."""
    env: dict[str, str] = Field(default_factory=dict)
    """Stdio: environment for the program (besides PATH)."""
    cwd: str | None = None
    """Stdio: its working directory."""
    url: str | None = None
    """Streamable HTTP: the server's URL, e.g. `http://127.0.0.1:8765/mcp`."""
    headers_env: dict[str, str] = Field(default_factory=dict)
    """Streamable HTTP: header name -> environment variable holding its value."""
    timeout_s: float = Field(30.0, gt=0)
    """Longest a tool call or the connection may take."""

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServerSettings:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of `command` (stdio) or `url` (streamable HTTP)")
        return self


class AgentSettings(Section):
    model: str
    """`<upstream>:<model>` for an upstream of this file, or a pydantic-ai model string."""
    fallback_models: list[str] = Field(default_factory=list)
    """Models tried in order when the previous one's attempts are spent or its circuit is open."""
    instructions: str | None = None
    """System instructions sent with every request."""
    output_retries: int = Field(1, ge=0, le=10)
    """How often pydantic-ai may ask the model again for a valid output."""
    max_tool_calls: int = Field(16, ge=0)
    """Tool calls one stream may make."""
    output_schema: dict[str, Any] | str | None = None
    """Structured output: an inline JSON Schema (a TOML table) or the path of a JSON file."""
    output_name: str = "output"
    """The name the model sees for the structured output."""
    mcp_servers: list[str] = Field(default_factory=list)
    """Names of `[mcp_servers.NAME]` whose tools this agent may call."""
    allow_system_messages: bool = False
    """OpenAI endpoint: use the client's system messages as extra instructions (else they are dropped)."""
    retry: dict[str, Any] = Field(default_factory=dict)
    """Overrides of `[retry]` for this agent."""
    timeouts: dict[str, Any] = Field(default_factory=dict)
    """Overrides of `[timeouts]` for this agent."""


class Settings(BaseSettings):
    """The whole configuration; sections mirror the TOML tables."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    server: ServerSettings = ServerSettings()
    retry: RetrySettings = RetrySettings()
    timeouts: TimeoutSettings = TimeoutSettings()
    circuit: CircuitSettings = CircuitSettings()
    conversations: ConversationSettings = ConversationSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    auth: AuthSettings = AuthSettings()
    upstreams: dict[str, UpstreamSettings] = Field(default_factory=dict)
    mcp_servers: dict[str, MCPServerSettings] = Field(default_factory=dict)
    agents: dict[str, AgentSettings] = Field(default_factory=dict)
    demo: bool = False
    """True when no file was given: the built-in demo (mock upstream in process, agent `demo`)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init kwargs; the environment must win over them.
        return env_settings, init_settings

    @model_validator(mode="after")
    def _check_references(self) -> Settings:
        problems: list[str] = []
        if not self.agents:
            problems.append("agents: at least one [agents.NAME] table is required")
        for name, agent in self.agents.items():
            for key, model in [
                ("model", agent.model),
                *(("fallback_models", m) for m in agent.fallback_models),
            ]:
                if not model.strip():
                    problems.append(f"agents.{name}.{key}: must not be empty")
            problems.extend(
                f"agents.{name}.mcp_servers: no [mcp_servers.{server}]"
                for server in agent.mcp_servers
                if server not in self.mcp_servers
            )
            if agent.output_schema is not None:
                try:
                    load_schema(agent.output_schema)
                except SchemaLoadError as exc:
                    problems.append(f"agents.{name}.output_schema: {exc}")
            for key, section in (("retry", self.retry), ("timeouts", self.timeouts)):
                overrides = getattr(agent, key)
                try:
                    type(section).model_validate({**section.model_dump(), **overrides})
                except ValidationError as exc:
                    problems.extend(f"agents.{name}.{key}.{_loc(e['loc'])}: {e['msg']}" for e in exc.errors())
        problems.extend(self.auth.problems())
        if self.auth.keys_file is not None:
            try:
                file_keys = load_keys_file(self.auth.keys_file, self.agents)
            except KeysFileError as exc:
                problems.append(f"auth.keys_file: {exc}")
            else:
                problems.extend(duplicate_key_problems([*self.auth.keys, *file_keys], "auth.keys_file"))
        problems.extend(unknown_agent_problems(self.auth.keys, self.agents, "auth.keys"))
        exposed = exposure_problem(self.server.host, self.auth)
        if exposed is not None:
            problems.append(exposed)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def retry_for(self, agent: str) -> RetrySettings:
        return self.retry.model_copy(update=self.agents[agent].retry)

    def timeouts_for(self, agent: str) -> TimeoutSettings:
        return self.timeouts.model_copy(update=self.agents[agent].timeouts)


def unknown_agent_problems(keys: Sequence[KeySettings], agents: Iterable[str], where: str) -> list[str]:
    known = set(agents)
    return [
        f"{where}[{i}].agents: no [agents.{agent}]"
        for i, key in enumerate(keys)
        for agent in key.agents or ()
        if agent not in known
    ]


class ConfigError(Exception):
    """A configuration problem; `str()` is one `FILE: key: problem` line per problem."""


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _format(source: str, exc: ValidationError) -> str:
    lines: list[str] = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        if not err["loc"]:  # from _check_references: each line already names its key
            lines.extend(f"{source}: {line}" for line in msg.splitlines())
        else:
            lines.append(f"{source}: {_loc(err['loc'])}: {msg}")
    return "\n".join(lines)


def demo_settings() -> Settings:
    """The built-in demo: agent `demo` in front of the in-process mock upstream."""
    return Settings(
        demo=True,
        server={"cors_allow_origins": ["*"]},
        upstreams={DEMO_UPSTREAM: {"base_url": "http://127.0.0.1:1/v1"}},  # rebound at start-up
        agents={
            "demo": {
                "model": f"{DEMO_UPSTREAM}:demo?echo=1&gap_ms=40",
                "instructions": "You are the agent-proxy demo.",
            }
        },
    )


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Settings from `path`, else from `$AGENT_PROXY_CONFIG`, else the built-in demo."""
    if path is None:
        path = os.environ.get(CONFIG_ENV) or None
    if path is None:
        try:
            return demo_settings()
        except ValidationError as exc:
            raise ConfigError(_format("environment", exc)) from exc
    data = read_toml(path)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format(str(path), exc)) from exc


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The file's TOML data; `ConfigError` naming the file when it cannot be read or parsed."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
