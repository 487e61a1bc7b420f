"""Keys, settings and clients for the auth tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from proxy.auth.keys import hash_key, new_key
from proxy.config import Settings
from proxy.mock_upstream import MockServer
from tests.conftest import settings_for

ALPHA = new_key()
BETA = new_key()
TOKEN_SECRET_ENV = "AGENT_PROXY_TEST_TOKEN_SECRET"
TOKEN_SECRET = "s" * 40


def entry(name: str, key: str, **extra: Any) -> dict[str, Any]:
    """An `[[auth.keys]]` table for `key`."""
    return {"name": name, "sha256": hash_key(key), **extra}


def keyed_settings(
    mock: MockServer, agents: dict[str, Any], keys: list[dict[str, Any]], **auth: Any
) -> Settings:
    return settings_for(mock, agents, auth={"mode": "keys", "keys": keys, **auth})


def config_file(tmp_path: Path, mock: MockServer, agents: dict[str, str], rest: str) -> Path:
    """A config file for `agent-proxy serve`: the mock upstream, `agents` (name -> mock model string),
    then the TOML of `rest`."""
    lines = ["[upstreams.mock]", f'base_url = "{mock.base_url}"']
    for name, model in agents.items():
        lines += [f"[agents.{name}]", f'model = "mock:{model}"']
    path = tmp_path / "proxy.toml"
    path.write_text("\n".join(lines) + "\n" + rest)
    return path


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
