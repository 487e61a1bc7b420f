"""API keys: generated once, stored only as SHA-256, looked up by hash, reloadable from a file.

A key is random (256 bits), so one SHA-256 is enough to store it: no salt or slow hash is needed
against guessing, unlike a password. Lookup is a dict access by the hash of what the client sent;
the stored and computed digests are then compared with `hmac.compare_digest`, so no comparison of
secrets depends on where they first differ.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from proxy.auth.identity import Identity
from proxy.auth.settings import KeySettings, duplicate_key_problems

log = logging.getLogger("agent_proxy.auth")

KEY_PREFIX = "apk_"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    # Header bytes that are not UTF-8 arrive as surrogates: they must hash (to nothing known), not raise.
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


class KeysFile(BaseModel):
    """A `keys_file`: `[[keys]]` tables with the fields of `[[auth.keys]]`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: list[KeySettings] = []


class KeysFileError(Exception):
    """Why a keys file cannot be used; `str()` names the file and each problem."""


def load_keys_file(path: str | Path, agents: Iterable[str]) -> list[KeySettings]:
    """The keys of `path`, validated against the configured agents; raises `KeysFileError`."""
    from proxy.config import ConfigError, read_toml, unknown_agent_problems  # config imports this module

    source = str(path)
    try:
        data = read_toml(path)
    except ConfigError as exc:
        raise KeysFileError(str(exc)) from exc
    try:
        keys = KeysFile(**data).keys
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise KeysFileError("\n".join(f"{source}: {p}" for p in problems)) from exc
    problems = duplicate_key_problems(keys, "keys") + unknown_agent_problems(keys, agents, "keys")
    if problems:
        raise KeysFileError("\n".join(f"{source}: {p}" for p in problems))
    return keys


class KeyRing:
    """The keys in force: by SHA-256 for lookup, by name for tokens (which name their key)."""

    def __init__(self, keys: Sequence[KeySettings]) -> None:
        self._by_hash = {k.sha256.lower(): (k.sha256.lower(), Identity.of(k)) for k in keys}
        self._by_name = {identity.name: identity for _, identity in self._by_hash.values()}

    def find(self, key: str) -> Identity | None:
        digest = hash_key(key)
        found = self._by_hash.get(digest)
        if found is None:
            return None
        stored, identity = found
        return identity if hmac.compare_digest(stored, digest) else None

    def named(self, name: str) -> Identity | None:
        return self._by_name.get(name)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def __len__(self) -> int:
        return len(self._by_hash)


class Keys:
    """The key ring of `[auth]`: the config's keys plus the keys file's, replaced whole on reload."""

    def __init__(
        self, configured: Sequence[KeySettings], keys_file: str | None, agents: Iterable[str]
    ) -> None:
        self._configured = list(configured)
        self._file = keys_file
        self._agents = list(agents)
        self.ring = KeyRing(self._configured + self._read())

    def _read(self) -> list[KeySettings]:
        return load_keys_file(self._file, self._agents) if self._file is not None else []

    def reload(self) -> bool:
        """Re-read the keys file (SIGHUP). A file that cannot be used keeps the keys in force and
        logs why. Streams already running are not touched: a revoked key fails its next request."""
        try:
            keys = self._configured + self._read()
        except KeysFileError as exc:
            log.error("keys file not reloaded, keeping the %d keys in force:\n%s", len(self.ring), exc)
            return False
        problems = duplicate_key_problems(keys, "keys")
        if problems:
            log.error(
                "keys file not reloaded, keeping the %d keys in force: it repeats a key of the config:\n%s",
                len(self.ring),
                "\n".join(problems),
            )
            return False
        self.ring = KeyRing(keys)
        log.info("keys reloaded: %d keys (%s)", len(self.ring), ", ".join(self.ring.names()))
        return True
