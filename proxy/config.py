"""Settings: one TOML file plus `AGENT_PROXY_*` environment overrides, validated with pydantic.

Every model forbids unknown keys, so a typo is an error that names its key rather than a setting
that silently does nothing. `load_settings` turns every problem into `ConfigError`, whose lines read
`FILE: key.path: problem`.
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, Self, cast, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from proxy.auth.keys import KeysFileError, load_keys_file
from proxy.auth.settings import (
    AuthSettings,
    KeySettings,
    VariableName,
    duplicate_key_problems,
    exposure_problem,
)
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
    max_messages: int = Field(1000, ge=2)
    """Messages kept per conversation (the oldest turns are dropped first)."""


class StateSettings(Section):
    """Where shared state lives: conversations, stream logs, stream leases."""

    backend: Literal["memory", "redis"] = "memory"
    """`memory`: this process only (one worker); `redis`: shared by every worker and replica."""
    redis_url_env: VariableName = "AGENT_PROXY_REDIS_URL"
    """The environment variable holding the Redis URL (`redis://host:6379/0`)."""
    key_prefix: str = "agent-proxy:"
    """Prefix of every Redis key, so that several proxies can share one Redis."""
    timeout_s: float = Field(1.0, gt=0)
    """Longest one Redis operation may take; a request that needs it then gets 503."""
    lease_ttl_s: float = Field(3.0, gt=0)
    """A stream's owner renews its lease this often (a third of it); another replica takes the
    stream over this long after the owner stopped renewing."""
    max_logs: int = Field(1000, ge=1)
    """Memory backend: the newest stream logs kept for resumption."""


class ResumeSettings(Section):
    grace_s: float = Field(0.0, ge=0)
    """A stream whose client left keeps running this long for a client to resume it (0: cancel at
    once)."""
    resume_ttl_s: float = Field(300.0, gt=0)
    """How long a stream's events stay resumable after its `end`."""


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value


class UpstreamSettings(Section):
    base_url: str
    """OpenAI-compatible base URL, e.g. `http://127.0.0.1:9100/v1`."""
    api_key_env: VariableName | None = None
    """Name of the environment variable that holds the API key (never the key itself)."""

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _http_url(value).rstrip("/")


class MCPServerSettings(Section):
    """An MCP server: `command` (stdio) or `url` (streamable HTTP)."""

    command: str | None = None
    """Stdio: the program to start."""
    args: list[str] = Field(default_factory=list)
    """Stdio: its arguments."""
    env: dict[str, str] = Field(default_factory=dict)
    """Stdio: environment for the program (besides PATH)."""
    cwd: str | None = None
    """Stdio: its working directory (a relative path starts at the config file's directory)."""
    url: str | None = None
    """Streamable HTTP: the server's URL, e.g. `http://127.0.0.1:8765/mcp`."""
    headers_env: dict[str, VariableName] = Field(default_factory=dict)
    """Streamable HTTP: header name -> environment variable holding its value."""
    timeout_s: float = Field(30.0, gt=0)
    """Longest a tool call or the connection may take."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        # Else the MCP client takes a string that is not a URL for a script to run.
        return value if value is None else _http_url(value)

    @field_validator("cwd")
    @classmethod
    def _directory(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_dir():
            raise ValueError(f"no directory {value}")
        return value

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
    """Structured output: an inline JSON Schema (a TOML table) or the path of a JSON file (a relative
    path starts at the config file's directory)."""
    output_name: str = "output"
    """The name the model sees for the structured output."""
    mcp_servers: list[str] = Field(default_factory=list)
    """Names of `[mcp_servers.NAME]` whose tools this agent may call."""
    allow_system_messages: bool = False
    """OpenAI endpoint: use the client's system messages as extra instructions (else they are dropped)."""
    aliases: list[str] = Field(default_factory=list)
    """Model names that reach this agent on the API doors (`model` of chat completions, Messages,
    Responses): exact names or globs such as `claude-sonnet-*`. An agent's own name wins over any
    alias; among aliases, the first agent of the file whose pattern matches."""
    retry: dict[str, Any] = Field(default_factory=dict)
    """Overrides of `[retry]` for this agent."""
    timeouts: dict[str, Any] = Field(default_factory=dict)
    """Overrides of `[timeouts]` for this agent."""

    @field_validator("output_schema", mode="before")
    @classmethod
    def _table_or_path(cls, value: Any) -> Any:
        # Else pydantic reports each member of the union, at keys such as `output_schema.str`.
        if value is not None and not isinstance(value, dict | str):
            raise ValueError("must be a table (an inline JSON Schema) or a string (a JSON file's path)")
        return value

    @field_validator("mcp_servers", mode="before")
    @classmethod
    def _server_names(cls, value: Any) -> Any:
        # An inline server (`[{ url = "…" }]`) is a likely mistake; say where a server is defined.
        if isinstance(value, list) and any(isinstance(item, dict) for item in value):
            raise ValueError("must be names of [mcp_servers.NAME] tables, each of which defines a server")
        return value


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
    state: StateSettings = StateSettings()
    resume: ResumeSettings = ResumeSettings()
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

    @model_validator(mode="wrap")
    @classmethod
    def _check_references(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        # On the raw data, so that these problems come in the same report as the fields' own.
        problems = [
            _detail(loc, message)
            for loc, message in _reference_problems(data if isinstance(data, dict) else {})
        ]
        try:
            settings = handler(data)
        except ValidationError as exc:
            # ErrorDetails carry the same keys as InitErrorDetails, plus `msg` and `url` (ignored).
            fields = cast(list[InitErrorDetails], exc.errors())
            raise ValidationError.from_exception_data(cls.__name__, [*fields, *problems]) from None
        problems.extend(_problem(line) for line in settings._auth_problems())
        if problems:
            raise ValidationError.from_exception_data(cls.__name__, problems)
        return settings

    def _auth_problems(self) -> list[str]:
        """`key: problem` lines about `[auth]` that need the other sections (agents, host)."""
        problems = list(self.auth.problems())
        if self.auth.keys_file is not None:
            try:
                file_keys = load_keys_file(self.auth.keys_file, self.agents)
            except KeysFileError as exc:
                problems.extend(f"auth.keys_file: {line}" for line in str(exc).splitlines())
            else:
                problems.extend(duplicate_key_problems([*self.auth.keys, *file_keys], "auth.keys_file"))
        problems.extend(unknown_agent_problems(self.auth.keys, self.agents, "auth.keys"))
        exposed = exposure_problem(self.server.host, self.auth)
        if exposed is not None:
            problems.append(exposed)
        return problems

    def retry_for(self, agent: str) -> RetrySettings:
        return self.retry.model_copy(update=self.agents[agent].retry)

    def timeouts_for(self, agent: str) -> TimeoutSettings:
        return self.timeouts.model_copy(update=self.agents[agent].timeouts)


def _detail(loc: tuple[str, ...], message: str) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError("reference", message), loc=loc, input=None)


def _problem(line: str) -> InitErrorDetails:
    """A `dotted.key: problem` line as an error at that key (so that its source can be blamed)."""
    key, _, message = line.partition(": ")
    return _detail(tuple(key.split(".")), message)


def _reference_problems(data: dict[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """What the fields cannot check alone: references between tables, schema files, per-agent
    overrides. Tolerates invalid values: the fields' own validation reports those."""
    agents = data.get("agents")
    if not agents:
        return [(("agents",), "at least one [agents.NAME] table is required")]
    if not isinstance(agents, dict):
        return []
    mcp_servers = data.get("mcp_servers")
    known_servers = set(mcp_servers) if isinstance(mcp_servers, dict) else set()
    problems: list[tuple[tuple[str, ...], str]] = []
    for name, agent in agents.items():
        if not isinstance(agent, dict):
            continue
        fallbacks = _list(agent.get("fallback_models"))
        for key, model in [("model", agent.get("model")), *(("fallback_models", m) for m in fallbacks)]:
            if isinstance(model, str) and not model.strip():
                problems.append((("agents", name, key), "must not be empty"))
        problems.extend(
            (("agents", name, "mcp_servers"), f"no [mcp_servers.{server}]")
            for server in _list(agent.get("mcp_servers"))
            if isinstance(server, str) and server not in known_servers
        )
        schema = agent.get("output_schema")
        if isinstance(schema, dict | str):
            try:
                load_schema(schema)
            except SchemaLoadError as exc:
                problems.append((("agents", name, "output_schema"), str(exc)))
        for key, section in (("retry", RetrySettings), ("timeouts", TimeoutSettings)):
            overrides = agent.get(key)
            if not isinstance(overrides, dict):
                continue
            try:
                section.model_validate(overrides)
            except ValidationError as exc:
                problems.extend(
                    (("agents", name, key, *(str(p) for p in e["loc"])), _message(e, section))
                    for e in exc.errors()
                )
    return problems


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


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


def _environment_paths() -> dict[tuple[str, ...], str]:
    """The settings path each `AGENT_PROXY_A__B` variable sets -> the variable's name (only the
    variables that pydantic-settings reads: those whose table is a setting)."""
    paths = {
        tuple(name[len(ENV_PREFIX) :].lower().split("__")): name
        for name in os.environ
        if name.upper().startswith(ENV_PREFIX)
    }
    return {path: name for path, name in paths.items() if path[0] in Settings.model_fields}


_PLAIN = {
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "dict_type": "must be a table",
    "list_type": "must be an array",
    "missing": "is required",
}
"""Messages in TOML's words for pydantic's shape errors ("a valid dictionary or instance of ...")."""


def _message(err: ErrorDetails, model: type[BaseModel]) -> str:
    """`err` (its `loc` inside `model`) as a config file's reader understands it."""
    if err["type"] == "extra_forbidden":
        key = str(err["loc"][-1])
        return _unknown_key(key, _keys_at(model, err["loc"][:-1]))
    return _PLAIN.get(err["type"], err["msg"].removeprefix("Value error, "))


def _unknown_key(key: str, known: Sequence[str]) -> str:
    """The message for an unknown `key`: the closest of `known`, else all of them."""
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"unknown key (did you mean `{close[0]}`?)"
    return f"unknown key (known: {', '.join(known)})" if known else "unknown key"


def _keys_at(annotation: Any, loc: Sequence[int | str]) -> list[str]:
    """The keys that the table at `loc` (under a value of type `annotation`) may hold."""
    found = _type_at(annotation, loc)
    models = [t for t in (found, *get_args(found)) if _is_model(t)]
    return list(models[0].model_fields) if models else []


def _type_at(annotation: Any, loc: Sequence[int | str]) -> Any:
    """The type of the value at `loc` under a value of type `annotation` (None: no such key)."""
    if not loc:
        return annotation
    if _is_model(annotation):
        field = annotation.model_fields.get(str(loc[0]))
        return _type_at(field.annotation, loc[1:]) if field is not None else None
    args = get_args(annotation)
    if get_origin(annotation) in (dict, list):
        return _type_at(args[-1], loc[1:])
    # `X | None`: the value is an X
    return next((found for arg in args if (found := _type_at(arg, loc)) is not None), None)


def _is_structured(annotation: Any) -> bool:
    """Whether a value of this type is a table or an array (which the environment gives as JSON)."""
    return any(get_origin(t) in (dict, list) or _is_model(t) for t in (annotation, *get_args(annotation)))


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


_LINE_BREAKS = {ord(c): c.encode("unicode_escape").decode() for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def one_line(problem: str) -> str:
    """`problem` with its line breaks escaped: one problem is one line, whatever a value in it holds."""
    return problem.translate(_LINE_BREAKS)


def _format(source: str, exc: ValidationError) -> str:
    """One `SOURCE: key: problem` line per error; SOURCE is the variable when one set that key."""
    from_env = _environment_paths()
    lines: list[str] = []
    for err in exc.errors():
        loc = tuple(str(part) for part in err["loc"])
        blamed = source
        for path, variable in from_env.items():
            if loc and (loc[: len(path)] == path or path[: len(loc)] == loc):
                blamed = variable
        lines.append(f"{blamed}: {_loc(err['loc'])}: {one_line(_message(err, Settings))}")
    return "\n".join(lines)


DEMO_MODEL = f"{DEMO_UPSTREAM}:demo?echo=1&gap_ms=40"
DEMO_FAULTS = {
    "demo-drop": "fault=drop&after=3",
    "demo-429": "fault=http429&retry_after=1",
    "demo-stall": "fault=stall&after=0",
}
"""The demo's fault agents (the playground's fault selector): every first attempt of a prompt
fails this way (`fault_every=2`) and its retry succeeds."""


def demo_settings() -> Settings:
    """The built-in demo: agent `demo` in front of the in-process mock upstream, and its fault agents."""
    instructions = "You are the agent-proxy demo."
    faults = {
        name: {
            "model": f"{DEMO_MODEL}&{fault}&fault_every=2",
            "instructions": instructions,
            "timeouts": {"first_token_s": 3.0},
        }
        for name, fault in DEMO_FAULTS.items()
    }
    return Settings(
        demo=True,
        # Heartbeats every second, so that the playground shows them while a stall waits.
        server={"cors_allow_origins": ["*"], "heartbeat_interval_s": 1.0},
        upstreams={DEMO_UPSTREAM: {"base_url": "http://127.0.0.1:1/v1"}},  # rebound at start-up
        # `claude-*`: Claude Code and Anthropic's SDKs reach the demo with their own model names.
        agents={
            "demo": {"model": DEMO_MODEL, "instructions": instructions, "aliases": ["claude-*"]},
            **faults,
        },
    )


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Settings from `path`, else from `$AGENT_PROXY_CONFIG`, else the built-in demo."""
    if path is None:
        path = os.environ.get(CONFIG_ENV) or None
    if path is None:
        source, data = "environment", None
    else:
        source, data = str(path), read_toml(path)
        _anchor_paths(data, Path(os.path.abspath(path)).parent)  # `..` is the file's, not a link's
    try:
        return demo_settings() if data is None else Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format(source, exc)) from exc
    except SettingsError as exc:  # pydantic-settings could not parse a variable's JSON
        raise ConfigError("\n".join(_unparsed_variables()) or str(exc)) from exc


def _unparsed_variables() -> list[str]:
    """`VARIABLE: key: problem` for each variable that sets a table or an array with no valid JSON."""
    lines = []
    for path, variable in _environment_paths().items():
        if _is_structured(_type_at(Settings, path)):
            try:
                json.loads(os.environ[variable])
            except ValueError as exc:
                lines.append(
                    f"{variable}: {'.'.join(path)}: must be JSON (it sets a table or an array): {exc}"
                )
    return lines


def _anchor_paths(data: dict[str, Any], directory: Path) -> None:
    """Make the file's relative paths (`auth.keys_file`, `agents.*.output_schema`, `mcp_servers.*.cwd`)
    relative to its `directory`, so that the file means the same from any working directory. Values
    from the environment are not the file's: they stay relative to the working directory."""

    def anchor(table: Any, key: str) -> None:
        if isinstance(table, dict) and isinstance(value := table.get(key), str) and value:
            table[key] = str(directory / value)  # an absolute value stays as it is

    anchor(data.get("auth"), "keys_file")
    for section, key in (("agents", "output_schema"), ("mcp_servers", "cwd")):
        tables = data.get(section)
        for table in tables.values() if isinstance(tables, dict) else ():
            anchor(table, key)


def unused_environment(settings: Settings) -> list[str]:
    """`VARIABLE: problem` lines for the `AGENT_PROXY_*` variables that set nothing: neither a
    setting (pydantic-settings ignores a table it does not know) nor a secret the config names."""
    named = {CONFIG_ENV, *_named_variables(settings)}
    lines = []
    for variable in sorted(os.environ):
        table = variable[len(ENV_PREFIX) :].split("__")[0].lower()
        if not variable.upper().startswith(ENV_PREFIX) or table in Settings.model_fields:
            continue
        if variable.upper() in named:
            continue
        close = difflib.get_close_matches(variable.upper(), _setting_variables(settings), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        lines.append(f"{variable}: sets no setting and is not named by the config{hint}")
    return lines


def _setting_variables(settings: Settings) -> list[str]:
    """The variables that set a key: `AGENT_PROXY_TABLE__KEY`, `AGENT_PROXY_TABLE__NAME__KEY`."""
    names = []
    for table, field in Settings.model_fields.items():
        value = getattr(settings, table)
        named = isinstance(value, dict)
        tables = [f"{table}__{name}" for name in value] if named else [table]
        keys = _keys_at(field.annotation, ["NAME"] if named else [])
        names += [f"{ENV_PREFIX}{t}__{k}".upper() for t in tables for k in keys] or [
            f"{ENV_PREFIX}{table}".upper()
        ]
    return names


def _named_variables(value: Any) -> Iterable[str]:
    """The variables a config names for its secrets: the values of every `*_env` key, upper-cased."""
    if isinstance(value, BaseModel):
        for key in type(value).model_fields:
            item = getattr(value, key)
            if key.endswith("_env"):
                yield from (
                    v.upper()
                    for v in (item.values() if isinstance(item, dict) else [item])
                    if isinstance(v, str)
                )
            else:
                yield from _named_variables(item)
    elif isinstance(value, dict | list):
        for item in value.values() if isinstance(value, dict) else value:
            yield from _named_variables(item)


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The file's TOML data; `ConfigError` naming the file when it cannot be read or parsed."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except ValueError as exc:  # a NUL in the path, or bytes that are not UTF-8
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
