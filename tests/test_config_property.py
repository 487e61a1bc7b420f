"""Property: whatever shape a config has (any value of any TOML type at any key, a key missing, a key
added), loading and checking it answers with `SOURCE: key: problem` lines, never a traceback; and a
config that passes builds its agents. Bounded in `make test` (`FUZZ_EXAMPLES`, default 40 per test).
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.agents import build_registry, check_models_and_secrets
from proxy.auth.keys import hash_key
from proxy.config import ConfigError, load_settings

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

SHA = hash_key("k")
BASE: dict[str, Any] = {
    "server": {"host": "127.0.0.1", "port": 8080, "workers": 1, "cors_allow_origins": ["*"]},
    "retry": {"max_attempts": 3, "mid_stream": "restart", "backoff_initial_s": 0.2},
    "timeouts": {"connect_s": 5, "first_token_s": 30.0},
    "circuit": {"failure_threshold": 5},
    "conversations": {"max_conversations": 100},
    "state": {"backend": "memory", "redis_url_env": "PROPERTY_REDIS_URL", "key_prefix": "p:"},
    "resume": {"grace_s": 0, "resume_ttl_s": 300},
    "observability": {"log_level": "INFO", "tracing": "off"},
    "auth": {
        "mode": "keys",
        "keys": [{"name": "team", "sha256": SHA, "agents": ["a"], "limits": {"requests_per_minute": 60}}],
        "keys_file": "keys.toml",
        "token_secret_env": "PROPERTY_TOKEN_SECRET",
    },
    "upstreams": {"u": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "PROPERTY_KEY"}},
    "mcp_servers": {
        "files": {"command": "python", "args": ["server.py"], "env": {"A": "b"}, "cwd": "tools"},
        "web": {"url": "http://127.0.0.1:9/mcp", "headers_env": {"Authorization": "PROPERTY_AUTH"}},
    },
    "agents": {
        "a": {
            "model": "u:m",
            "fallback_models": ["test"],
            "instructions": "Be brief.",
            "output_schema": "schema.json",
            "mcp_servers": ["files", "web"],
            "aliases": ["gpt-*"],
            "retry": {"max_attempts": 2},
            "timeouts": {"idle_s": 10},
        },
        "b": {"model": "test", "output_schema": {"type": "object", "properties": {"x": {"type": "string"}}}},
    },
}
SECRETS = {"PROPERTY_KEY": "k", "PROPERTY_AUTH": "a", "PROPERTY_TOKEN_SECRET": "s" * 32}
"""The secrets BASE names: set, so that an example that passes goes on to build its agents."""


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield from _paths(item, (*prefix, key))


PATHS = list(_paths(BASE))[1:]

_scalars = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_keys = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
VALUES = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=6,
)
MUTATIONS = st.tuples(st.sampled_from(PATHS), st.sampled_from(["set", "delete", "add"]), VALUES, _keys)


def _mutated(mutations: list[tuple[tuple[str | int, ...], str, Any, str]]) -> dict[str, Any]:
    """BASE with each (path, how, value, key): `set` the path to value, `delete` it, or `add` key to it."""
    data: dict[str, Any] = copy.deepcopy(BASE)
    for path, how, value, key in mutations:
        *parents, last = path
        table: Any = data
        for part in parents:
            table = _child(table, part)
        if _child(table, last) is None:
            continue  # an earlier mutation removed or replaced it
        if how == "set":
            table[last] = value
        elif how == "delete":
            del table[last]
        elif isinstance(table[last], dict):
            table[last][key] = value
    return data


def _child(table: Any, part: str | int) -> Any:
    if isinstance(table, dict) and isinstance(part, str):
        return table.get(part)
    if isinstance(table, list) and isinstance(part, int) and part < len(table):
        return table[part]
    return None


def _toml(value: Any) -> str:
    """A TOML value: inline tables and arrays, strings as basic strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The config's directory, with the files its relative paths name."""
    path = tmp_path_factory.mktemp("config")
    (path / "tools").mkdir()
    (path / "schema.json").write_text('{"type": "object", "properties": {"n": {"type": "integer"}}}')
    (path / "keys.toml").write_text(f'[[keys]]\nname = "other"\nsha256 = "{hash_key("o")}"\n')
    return path


def _check(path: Path, env_variable: str | None = None) -> None:
    """Load and check `path` as `check-config` and `serve` do: problems are lines, not exceptions."""
    try:
        config = load_settings(path)
    except ConfigError as exc:
        lines = str(exc).splitlines()
    else:
        problems, unset = check_models_and_secrets(config)
        lines = [f"{path}: {line}" for line in problems + unset]
        if not lines:
            build_registry(config)
            return
    sources = re.escape(str(path)) + (f"|{env_variable}" if env_variable else "")
    for line in lines:
        assert re.fullmatch(rf"({sources}): [^:\s][^:]*: .*\S.*", line), lines
        assert "(top level)" not in line, lines


@FUZZ
@given(st.lists(MUTATIONS, min_size=1, max_size=3))
def test_any_shape_of_config_is_problem_lines_or_agents(directory: Path, mutations: list[Any]) -> None:
    path = _write(directory, _mutated(mutations))
    with pytest.MonkeyPatch.context() as env:
        for name, value in SECRETS.items():
            env.setenv(name, value)
        _check(path)


ENV_PATHS = [cast(tuple[str, ...], p) for p in PATHS if all(isinstance(part, str) for part in p)]


@FUZZ
@given(st.sampled_from(ENV_PATHS), st.text(max_size=12).filter(lambda s: "\x00" not in s))
def test_any_environment_override_is_problem_lines_or_agents(
    directory: Path, path: tuple[str, ...], value: str
) -> None:
    config = _write(directory, BASE)
    variable = "AGENT_PROXY_" + "__".join(path).upper()
    with pytest.MonkeyPatch.context() as env:
        for name, secret in {**SECRETS, variable: value}.items():
            env.setenv(name, secret)
        _check(config, variable)


def _write(directory: Path, data: dict[str, Any]) -> Path:
    path = directory / "proxy.toml"
    path.write_text("".join(f"{json.dumps(k)} = {_toml(v)}\n" for k, v in data.items()), encoding="utf-8")
    return path
