"""Per-key limits: requests and tokens per minute, concurrent streams, over a `LimitStore`.

Admission asks the token window (spent: refused), takes a stream slot, then counts the request;
a refusal gives back what it took, so a refused request changes nothing. Tokens are charged when
the stream closes, with the usage the upstream reported, so a long answer spends the window after
the fact and the key's next requests wait for it to refill. `release` runs exactly once per admitted
stream (the engine calls it from the one place every stream passes when it closes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

from proxy.auth.identity import Caller
from proxy.engine.refusals import RateLimited, StateUnavailable
from proxy.events import End
from proxy.state.limits import Decision, LimitStore

log = logging.getLogger("agent_proxy.auth")

WINDOW_S = 60.0
SLOT_RETRY_AFTER_S = 1.0
"""A stream slot frees when some stream ends: no window says when, so try again soon."""

Limit = Literal["requests", "tokens", "concurrency"]


@dataclass(frozen=True, slots=True)
class Grant:
    """What an admitted stream holds until it closes."""

    key: str
    slot: bool
    charge_tokens: bool


class Limiter:
    def __init__(
        self,
        store: LimitStore,
        *,
        on_limited: Callable[[str, Limit], None] = lambda key, limit: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._on_limited = on_limited
        self.clock = clock
        """Injectable, so that tests can stand at a window's or a token's edge."""
        self._pending: set[asyncio.Task[None]] = set()

    def _refuse(
        self, caller: Caller, limit: Limit, retry_after: float, quota: dict[str, Decision]
    ) -> RateLimited:
        caller.quota = quota
        self._on_limited(caller.identity.name, limit)
        what = "concurrent streams" if limit == "concurrency" else f"{limit} per minute"
        return RateLimited(
            f"key {caller.identity.name!r} is over its limit of {what}; retry after {retry_after:.0f} s",
            retry_after=retry_after,
        )

    async def admit(self, caller: Caller) -> Grant | None:
        """Apply the caller's limits to one new stream; raises `RateLimited` (then nothing changed)."""
        identity = caller.identity
        limits = identity.limits
        if limits is None:
            return None
        name, now = identity.name, self.clock()
        quota: dict[str, Decision] = {}
        if limits.tokens_per_minute is not None:
            tokens = await self.store.hit(f"{name}:tokens", WINDOW_S, 0, limits.tokens_per_minute, now)
            quota["tokens"] = tokens
            if not tokens.allowed:
                raise self._refuse(caller, "tokens", tokens.reset_s, quota)
        slot = False
        if limits.concurrent_streams is not None:
            slot = await self.store.acquire_slot(f"{name}:streams", limits.concurrent_streams)
            if not slot:
                raise self._refuse(caller, "concurrency", SLOT_RETRY_AFTER_S, quota)
        if limits.requests_per_minute is not None:
            try:
                requests = await self.store.hit(
                    f"{name}:requests", WINDOW_S, 1, limits.requests_per_minute, now
                )
            except BaseException:  # a store error, or the request cancelled: the slot is not kept
                if slot:
                    self._spawn(self.store.release_slot(f"{name}:streams"))
                raise
            quota["requests"] = requests
            if not requests.allowed:
                if slot:
                    await self.store.release_slot(f"{name}:streams")
                raise self._refuse(caller, "requests", requests.reset_s, quota)
        caller.quota = quota
        return Grant(name, slot, limits.tokens_per_minute is not None)

    def release(self, grant: Grant, end: End | None) -> None:
        """The stream closed: give back its slot and charge its tokens (`end` is None when the client
        left before the end: nothing reported, nothing charged). Synchronous for the engine's close
        hook; the store's work runs as a task."""
        tokens = end.usage.input_tokens + end.usage.output_tokens if end is not None else 0
        self._spawn(self._release(grant, tokens))

    async def _release(self, grant: Grant, tokens: int) -> None:
        try:
            if grant.slot:
                await self.store.release_slot(f"{grant.key}:streams")
            if grant.charge_tokens and tokens:
                # Charged whatever the window holds: the upstream already spent these tokens.
                await self.store.hit(f"{grant.key}:tokens", WINDOW_S, tokens, 1 << 62, self.clock())
        except StateUnavailable:
            log.warning(
                "limits of key %r not updated at the end of a stream: shared state unavailable", grant.key
            )

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def settled(self) -> None:
        """Wait for releases in flight (tests, shutdown)."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
