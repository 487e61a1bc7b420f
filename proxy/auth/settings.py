"""The `[auth]` section of the config: the mode, the keys (by name and SHA-256), tokens, limits.

A key is never written in a config file: only the SHA-256 of it, which `agent-proxy keys create`
prints. The token secret is named by environment variable, as every other secret.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _variable_name(value: str) -> str:
    if not re.fullmatch(r"[^=\s\x00]+", value):
        raise ValueError("must be the name of an environment variable")
    return value


VariableName = Annotated[str, AfterValidator(_variable_name)]
"""The name of the environment variable that holds a secret (every `*_env` key)."""

MIN_SECRET_CHARS = 32
"""A token secret shorter than this is refused: HMAC is only as strong as its secret."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class LimitSettings(_Section):
    requests_per_minute: int | None = Field(None, ge=1)
    """Requests admitted per minute (None: no limit)."""
    tokens_per_minute: int | None = Field(None, ge=1)
    """Upstream tokens (input + output, as reported) per minute; a spent window refuses until it refills."""
    concurrent_streams: int | None = Field(None, ge=1)
    """Streams running at once."""


class KeySettings(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    """What logs, metrics and spans show for this key."""
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    """SHA-256 of the key, hex (`agent-proxy keys create` prints it); the key itself is never stored."""
    agents: list[str] | None = None
    """Agents this key may use (default: all)."""
    limits: LimitSettings = LimitSettings()
    """`{ requests_per_minute, tokens_per_minute, concurrent_streams }`, each optional."""


class AuthSettings(_Section):
    mode: Literal["none", "keys"] = "none"
    """`keys`: every request needs a key or a token; `none`: anyone who reaches the port may call."""
    keys: list[KeySettings] = Field(default_factory=list)
    """`[[auth.keys]]` tables: name, sha256, agents, limits."""
    keys_file: str | None = None
    """A TOML file of `[[keys]]` tables (the same fields), re-read on SIGHUP (a relative path starts
    at the config file's directory)."""
    token_secret_env: VariableName | None = None
    """Variable holding the secret (32+ characters) that signs tokens; unset: random, this process only."""
    token_ttl_s: float = Field(300.0, gt=0, le=3600)
    """Default lifetime of a token from `POST /v1/tokens` (at most 3600 s)."""
    allow_unauthenticated: bool = False
    """Allow `mode = "none"` on a non-loopback host (otherwise `serve` refuses to start)."""
    max_key_labels: int = Field(100, ge=1, le=10_000)
    """Distinct key names the `key` metric label takes; later ones are counted as `other`."""

    def problems(self) -> list[str]:
        """What is wrong with this section, one `auth.key: problem` line each (Settings reports them)."""
        problems: list[str] = []
        if self.mode == "keys" and not self.keys and self.keys_file is None:
            problems.append('auth.keys: mode = "keys" needs [[auth.keys]] tables or a keys_file')
        problems.extend(duplicate_key_problems(self.keys, "auth.keys"))
        return problems

    def short_token_secret(self) -> str | None:
        """The problem with a token secret that is set but too short (None: no such problem). Not
        one of `problems`: a secret is in the environment, which `check-config` may lack."""
        if self.token_secret_env is None:
            return None
        secret = os.environ.get(self.token_secret_env, "")
        if secret and len(secret) < MIN_SECRET_CHARS:
            return (
                f"auth.token_secret_env: the environment variable {self.token_secret_env} must hold "
                f"a secret of at least {MIN_SECRET_CHARS} characters"
            )
        return None

    def token_secret(self) -> bytes | None:
        """The configured token secret (`serve` checked it), or None when none is configured."""
        if self.token_secret_env is None:
            return None
        return os.environ[self.token_secret_env].encode()


def duplicate_key_problems(keys: list[KeySettings], where: str) -> list[str]:
    problems: list[str] = []
    names: set[str] = set()
    hashes: set[str] = set()
    for i, key in enumerate(keys):
        if key.name in names:
            problems.append(f"{where}[{i}].name: {key.name!r} is used twice")
        if key.sha256.lower() in hashes:
            problems.append(f"{where}[{i}].sha256: the same key is configured twice")
        names.add(key.name)
        hashes.add(key.sha256.lower())
    return problems


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_problem(host: str, auth: AuthSettings) -> str | None:
    """Why serving `host` with these auth settings is refused (None: it is fine)."""
    if auth.mode == "none" and not auth.allow_unauthenticated and not is_loopback(host):
        return (
            f'auth.allow_unauthenticated: serving {host} with [auth] mode = "none" lets anyone who '
            'reaches the port spend the upstream budget; set [auth] mode = "keys" with keys, or '
            "allow_unauthenticated = true (AGENT_PROXY_AUTH__ALLOW_UNAUTHENTICATED=true) to accept that"
        )
    return None
