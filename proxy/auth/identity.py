"""Who is calling: the key's identity (name, agents, limits) and the per-request `Caller`."""

from __future__ import annotations

from collections.abc import Mapping
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
    """One request's caller: its identity, and the quota its admission left (for the headers)."""

    __slots__ = ("identity", "quota")

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.quota: Quota | None = None
