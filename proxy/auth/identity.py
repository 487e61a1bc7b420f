"""Who is calling: the key's identity (name, agents, limits) and the per-request `Caller`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from proxy.auth.settings import KeySettings, LimitSettings
from proxy.observability.observer import ANONYMOUS_KEY
from proxy.state.limits import Decision

Quota = Mapping[str, Decision]
"""The caller's windows after admission, by limit (`requests`, `tokens`): what the
`x-ratelimit-*` headers show."""


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    """The configured name: what logs, metrics and spans show, and who owns conversations."""
    agents: frozenset[str] | None = None
    """Agents it may use; None: all."""
    limits: LimitSettings | None = None

    @classmethod
    def of(cls, key: KeySettings) -> Identity:
        limits = key.limits if key.limits != LimitSettings() else None
        return cls(key.name, frozenset(key.agents) if key.agents is not None else None, limits)

    def may_use(self, agent: str) -> bool:
        return self.agents is None or agent in self.agents

    def bound_to(self, agent: str | None) -> Identity:
        """This identity narrowed to one agent (a token bound to it)."""
        if agent is None:
            return self
        allowed = frozenset({agent}) if self.may_use(agent) else frozenset()
        return Identity(self.name, allowed, self.limits)


ANONYMOUS = Identity(ANONYMOUS_KEY)


class Caller:
    """One request's caller: its identity, and the quota its admission left (for the headers).

    A WebSocket keeps its caller for many prompts; `refresh` looks the key up again in the keys in
    force (`lookup`), so that a key revoked by a reload is refused on its next prompt."""

    __slots__ = ("_agent", "_lookup", "identity", "quota")

    def __init__(
        self,
        identity: Identity,
        lookup: Callable[[str], Identity | None] | None = None,
        agent: str | None = None,
    ) -> None:
        self.identity = identity
        self.quota: Quota | None = None
        self._lookup = lookup
        self._agent = agent

    def refresh(self) -> bool:
        """Take the key's current settings; False when it was revoked."""
        if self._lookup is None:
            return True
        found = self._lookup(self.identity.name)
        if found is None:
            return False
        self.identity = found.bound_to(self._agent)
        return True
