"""`LimitStore` on Redis: limit windows and stream slots shared by every process and replica.

Each operation is one Lua script, so a window's check and its increment are one atomic step on the
server, whichever proxy sends them. A window is a counter named after its key and index, expiring
with the window. A slot count has no natural end, so it carries a long expiry renewed on every
acquire: the safety net for a process that died holding slots (section 10's leases are the real
answer), not something the proxy relies on.

Redis that cannot be reached is `StateUnavailable` (503 `state_unavailable`), never a hang: the
client is expected to carry socket timeouts and few or no retries (redis-py's default retries with
backoff hold a request for seconds).
"""

from __future__ import annotations

from typing import Any, Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

from proxy.engine.refusals import StateUnavailable
from proxy.state.limits import Decision, window_state

_HIT: Final = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[2]) then
  return {0, used}
end
used = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, used}
"""
_ACQUIRE: Final = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then
  return 0
end
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
_RELEASE: Final = """
local used = redis.call('DECR', KEYS[1])
if used <= 0 then
  redis.call('DEL', KEYS[1])
end
return used
"""
SLOT_TTL_MS: Final = 3_600_000
"""How long a slot count outlives its last acquire (see the module docstring)."""


class RedisLimitStore:
    def __init__(self, client: Redis, prefix: str = "agent_proxy:limits:") -> None:
        self._client = client
        self._prefix = prefix
        self._hit = client.register_script(_HIT)
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)

    async def _run(self, script: Any, keys: list[str], args: list[int | float]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise StateUnavailable(
                "the shared state cannot be reached; retry shortly", retry_after=1
            ) from exc

    async def hit(self, key: str, window: float, cost: int, limit: int, now: float) -> Decision:
        index, reset = window_state(window, now)
        ttl_ms = int((reset + 1) * 1000)
        allowed, used = await self._run(self._hit, [f"{self._prefix}{key}:{index}"], [cost, limit, ttl_ms])
        if not allowed:
            return Decision(False, limit, 0, reset)
        return Decision(True, limit, max(0, limit - int(used)), reset)

    async def acquire_slot(self, key: str, limit: int) -> bool:
        taken = await self._run(self._acquire, [f"{self._prefix}{key}"], [limit, SLOT_TTL_MS])
        return bool(taken)

    async def release_slot(self, key: str) -> None:
        await self._run(self._release, [f"{self._prefix}{key}"], [])
