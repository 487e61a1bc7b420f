"""Shared state on Redis, for several worker processes and replicas.

Keys (under `key_prefix`): `conv:<id>` a conversation and its owner; `meta:<id>` what a stream runs
on (for a takeover) and who may follow it; `log:<id>` the stream's events (a Redis Stream: an entry
holds the events of one write batch, one JSON per line, and its id is `<seq of its last event>-1`);
`lease:<id>` the process that runs it; `seen:<id>` set while a client follows it.

A stream's writes are buffered and sent by one flusher per process, one pipeline per batch, so a
stream never waits for Redis and a busy process sends many events per round trip. A conversation's
SET goes with the batch too, at once: the stream's `end` waits for it. So a short stream's start,
events and conversation usually take one round trip, and its `end` goes with the next stream's.
Every operation is bounded by `timeout_s`; failures are counted and become `StateError` (503
`state_unavailable` for a request that needs the state), and a running stream goes on without its
log.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pydantic_ai.messages import ModelMessage
from redis.asyncio import Redis
from redis.exceptions import RedisError

from proxy.config import ConversationSettings, ResumeSettings, StateSettings
from proxy.conversations import trim_history
from proxy.engine.shared import OwnerLost, StateError, StateMetrics, StoredStream, UnknownStreamError
from proxy.events import End, Event
from proxy.observability.observer import ANONYMOUS_KEY
from proxy.state.codec import (
    decode_event,
    decode_input,
    decode_messages,
    encode_event,
    encode_input,
    encode_messages,
)
from proxy.state.redis_batches import BatchConnection, Command

log = logging.getLogger(__name__)

T = TypeVar("T")

_Write = tuple[StoredStream | None, str, Event | None]
"""A stream's start (what it runs on) or one of its events, buffered for the next batch."""

FLUSH_DELAY_S = 0.02
"""How long a stream log write may wait to share its round trip with others. A resuming client
sees events up to this much later than the client that is attached (an attached client is never
delayed). At 20 ms rather than 5, most streams at low load take one round trip instead of two."""

META_WAITS_S = (0.01, 0.02, 0.04, 0.08)
"""How long a follower looks again for a stream it cannot find yet, before it is unknown: its start
may still be in its owner's buffer."""

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
"""Renew a lease only while this process still holds it (another may have taken the stream over)."""

_DELETE_OWNED = """
local raw = redis.call('get', KEYS[1])
if raw and string.sub(raw, 1, #ARGV[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
"""Delete a conversation only if it is the owner's: its JSON starts with `{"owner":<owner>,`."""


@dataclass(frozen=True, slots=True)
class _Store:
    """A SET that goes with the next batch of stream log writes."""

    key: str
    body: bytes
    ttl_s: int
    written: asyncio.Future[None]

    def failed(self, exc: StateError) -> None:
        # Done already when it was written, or when the stream waiting for it was cancelled.
        if not self.written.done():
            self.written.set_exception(exc)


class _NoMetrics:
    def resumed(self, outcome: str) -> None:
        pass

    def took_over(self) -> None:
        pass

    def state_error(self, op: str) -> None:
        pass

    def state_latency(self, op: str, seconds: float) -> None:
        pass


class RedisState:
    def __init__(
        self,
        url: str,
        settings: StateSettings,
        resume: ResumeSettings,
        conversations: ConversationSettings,
        *,
        longest_stream_s: float,
        metrics: StateMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics: StateMetrics = metrics or _NoMetrics()
        self.redis = Redis.from_url(
            url, socket_timeout=settings.timeout_s, socket_connect_timeout=settings.timeout_s
        )
        self.token = uuid.uuid4().hex
        """This process, as the holder of its streams' leases."""
        self.conversations = RedisConversations(self, conversations)
        self.logs = RedisStreamLogs(self, resume, longest_stream_s)
        self._healthy = False
        self._tasks: list[asyncio.Task[None]] = []
        self.closing = False
        """Set by `aclose`. The background loops check it too: a cancellation that reaches them
        inside redis-py is sometimes lost (seen about once in 20 closes with a lease renewal under
        way), and `aclose` must not wait for a loop that goes on."""

    def key(self, kind: str, ident: str) -> str:
        return f"{self.settings.key_prefix}{kind}:{ident}"

    @property
    def healthy(self) -> bool:
        return self._healthy

    async def start(self) -> None:
        await self._check()
        if not self._healthy:
            log.warning("redis cannot be reached; streams are refused until it can")
        self._tasks = [
            asyncio.create_task(self._watch_health()),
            asyncio.create_task(self.logs.renew_leases()),
        ]

    async def aclose(self) -> None:
        self.closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.logs.flush()
        await self.logs.writer.aclose()
        await self.redis.aclose()

    async def op(self, name: str, call: Awaitable[T]) -> T:
        """One bounded Redis operation, timed and counted; StateError when it fails."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                return await call
        except (RedisError, OSError, TimeoutError) as exc:
            self.metrics.state_error(name)
            raise StateError(f"redis {name}: {type(exc).__name__}") from exc
        finally:
            self.metrics.state_latency(name, time.perf_counter() - started)

    async def _check(self) -> None:
        try:
            await self.op("ping", self.redis.ping())
        except StateError:
            if self._healthy:
                log.warning("redis cannot be reached; new streams get 503 state_unavailable")
            self._healthy = False
        else:
            if not self._healthy:
                log.info("redis reachable")
            self._healthy = True

    async def _watch_health(self) -> None:
        while not self.closing:
            await asyncio.sleep(1.0)
            await self._check()


class RedisConversations:
    def __init__(self, state: RedisState, settings: ConversationSettings) -> None:
        self._state = state
        self._ttl = max(1, round(settings.idle_ttl_s))
        self._max_messages = settings.max_messages
        self._delete = state.redis.register_script(_DELETE_OWNED)

    async def get(self, conversation_id: str, owner: str | None = ANONYMOUS_KEY) -> list[ModelMessage] | None:
        key = self._state.key("conv", conversation_id)
        raw = await self._state.op("conversation_get", self._state.redis.getex(key, ex=self._ttl))
        if raw is None:
            return None
        data = orjson.loads(raw)
        if data["owner"] != owner:
            return None
        return decode_messages(orjson.dumps(data["messages"]))

    async def put(
        self, conversation_id: str, messages: Sequence[ModelMessage], owner: str | None = ANONYMOUS_KEY
    ) -> None:
        kept = trim_history(list(messages), self._max_messages)
        body = b'{"owner":%s,"messages":%s}' % (orjson.dumps(owner), encode_messages(kept))
        await self._state.logs.store(self._state.key("conv", conversation_id), body, self._ttl)

    async def delete(self, conversation_id: str, owner: str | None = ANONYMOUS_KEY) -> bool:
        key = self._state.key("conv", conversation_id)
        owned = b'{"owner":%s,' % orjson.dumps(owner)
        return bool(await self._state.op("conversation_delete", self._delete(keys=[key], args=[owned])))


class RedisStreamLogs:
    def __init__(self, state: RedisState, resume: ResumeSettings, longest_stream_s: float) -> None:
        self._state = state
        self._ended_ttl = max(1, round(resume.resume_ttl_s))
        self._running_ttl = max(1, round(resume.resume_ttl_s + longest_stream_s))
        self._lease_ms = max(1, round(state.settings.lease_ttl_s * 1000))
        self._pending: list[_Write] = []
        self._stores: list[_Store] = []
        self._flushing: asyncio.Task[None] | None = None
        self._owned: set[str] = set()
        self._expiring: set[str] = set()
        """Streams whose log has its running expiry set."""
        self._urgent = asyncio.Event()
        self._renew = state.redis.register_script(_RENEW)
        self.writer = BatchConnection(state.redis)

    # --- the owner's side: buffered writes ---------------------------------------------------

    def begin(self, stored: StoredStream) -> None:
        self._pending.append((stored, stored.stream_id, None))
        self._flush_soon(urgent=False)

    def append(self, stream_id: str, event: Event) -> None:
        self._pending.append((None, stream_id, event))
        self._flush_soon(urgent=False)

    async def store(self, key: str, body: bytes, ttl_s: int) -> None:
        """SET `key` in the next batch, at once, and wait for it (a stream's `end` waits for its
        conversation): the events buffered so far share its round trip."""
        written = asyncio.get_running_loop().create_future()
        self._stores.append(_Store(key, body, ttl_s, written))
        self._flush_soon(urgent=True)
        await written

    def _flush_soon(self, *, urgent: bool) -> None:
        if urgent:
            self._urgent.set()
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush_pending())

    async def flush(self) -> None:
        """Send what is buffered (shutdown)."""
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)

    async def _flush_pending(self) -> None:
        # Each batch waits a few milliseconds, unless a conversation is waiting, so that the writes
        # of many streams share a round trip: at most a few per stream, never one per event.
        while self._pending or self._stores:
            try:
                async with asyncio.timeout(FLUSH_DELAY_S):
                    await self._urgent.wait()
            except TimeoutError:
                pass
            self._urgent.clear()
            batch, self._pending = self._pending, []
            stores, self._stores = self._stores, []
            try:
                await self._state.op("append", self._send(batch, stores))
            except StateError as exc:
                log.warning("stream logs: %d writes lost (redis unreachable)", len(batch) + len(stores))
                for store in stores:
                    self._state.metrics.state_error("conversation_put")
                    store.failed(exc)
            finally:
                for store in stores:
                    store.failed(StateError("redis conversation_put: not sent"))

    async def _send(self, batch: list[_Write], stores: list[_Store]) -> None:
        s = self._state
        commands: list[Command] = [("SET", store.key, store.body, "EX", store.ttl_s) for store in stores]
        # One log entry per stream and batch, holding its events one JSON per line, with the id
        # `<seq of its last event>-1`: one command per stream rather than per event.
        lines: dict[str, list[bytes]] = {}
        last: dict[str, Event] = {}
        leased: list[str] = []
        for stored, stream_id, event in batch:
            if stored is not None:
                leased.append(stream_id)
                meta = {"agent": stored.agent, "owner": stored.owner, "input": encode_input(stored.request)}
                meta_key = s.key("meta", stream_id)
                commands.append(("SET", meta_key, orjson.dumps(meta), "EX", self._running_ttl))
                commands.append(("SET", s.key("lease", stream_id), s.token, "PX", self._lease_ms))
            else:
                assert event is not None
                lines.setdefault(stream_id, []).append(encode_event(event))
                last[stream_id] = event
        for stream_id, encoded in lines.items():
            log_key = s.key("log", stream_id)
            commands.append(("XADD", log_key, f"{last[stream_id].seq}-1", "e", b"\n".join(encoded)))
            if type(last[stream_id]) is End:
                self._owned.discard(stream_id)
                self._expiring.discard(stream_id)
                commands.append(("DEL", s.key("lease", stream_id)))
                commands.append(("EXPIRE", s.key("meta", stream_id), self._ended_ttl))
                commands.append(("EXPIRE", log_key, self._ended_ttl))
            elif stream_id not in self._expiring:
                self._expiring.add(stream_id)
                commands.append(("EXPIRE", log_key, self._running_ttl))
        results = await self.writer.execute(commands)
        # Renewed from now on: renewing a lease this batch had not yet written would find none, and
        # give the stream up as lost.
        self._owned.update(id_ for id_ in leased if type(last.get(id_)) is not End)
        for store, result in zip(stores, results, strict=False):
            if isinstance(result, Exception):
                s.metrics.state_error("conversation_put")
                store.failed(StateError(f"redis conversation_put: {result}"))
            elif not store.written.done():
                store.written.set_result(None)
        failed = [r for r in results[len(stores) :] if isinstance(r, Exception)]
        if failed:
            # An id at or below the last one: another process took the stream over from this one.
            s.metrics.state_error("append")
            log.warning("stream logs: %d of %d writes refused: %s", len(failed), len(results), failed[0])

    async def renew_leases(self) -> None:
        """Renew the lease of every stream this process runs, a third of the lease time apart."""
        s = self._state
        while not s.closing:
            await asyncio.sleep(s.settings.lease_ttl_s / 3)
            owned = list(self._owned)
            if not owned:
                continue
            try:
                await s.op("lease_renew", self._renew_all(owned))
            except StateError:
                pass

    async def _renew_all(self, owned: list[str]) -> None:
        s = self._state
        pipe = s.redis.pipeline(transaction=False)
        for stream_id in owned:
            await self._renew(keys=[s.key("lease", stream_id)], args=[s.token, self._lease_ms], client=pipe)
        results = await pipe.execute(raise_on_error=False)
        for stream_id, renewed in zip(owned, results, strict=True):
            if renewed == 0 and stream_id in self._owned:
                self._owned.discard(stream_id)
                log.warning("stream %s: lease lost; another process may take it over", stream_id)

    # --- a follower's side --------------------------------------------------------------------

    async def follow(
        self, stream_id: str, after: int, owner: str | None = None
    ) -> AsyncIterator[Event | OwnerLost]:
        s = self._state
        meta_key = s.key("meta", stream_id)
        raw = await s.op("resume", s.redis.get(meta_key))
        for pause in META_WAITS_S:
            if raw is not None:
                break
            # A stream's start reaches Redis with its owner's next batch, a few milliseconds after
            # the client has it: a client quick to resume may be there first.
            await asyncio.sleep(pause)
            raw = await s.op("resume", s.redis.get(meta_key))
        if raw is None or orjson.loads(raw)["owner"] != owner:
            raise UnknownStreamError(stream_id)
        return self._follow(stream_id, after)

    async def _follow(self, stream_id: str, after: int) -> AsyncGenerator[Event | OwnerLost, None]:
        s = self._state
        log_key, seen_key = s.key("log", stream_id), s.key("seen", stream_id)
        last_id, last_seq = (f"{after}-1" if after >= 0 else "0-0"), after
        # Short blocking reads (within the operation timeout); the lease is checked after a quiet
        # lease period.
        block_ms = max(1, round(s.settings.timeout_s * 500))
        quiet_since = time.monotonic()
        while True:
            await s.op("follow", s.redis.set(seen_key, b"1", px=2 * self._lease_ms))
            read: Any = await s.op("follow", s.redis.xread({log_key: last_id}, count=500, block=block_ms))
            if read:
                quiet_since = time.monotonic()
                for entry_id, fields in read[0][1]:
                    last_id = entry_id
                    for line in fields[b"e"].split(b"\n"):
                        event = decode_event(line)
                        if event.seq is None or event.seq <= last_seq:
                            continue  # an entry holds a batch: the follower may have part of it
                        last_seq = event.seq
                        yield event
                        if type(event) is End:
                            return
            elif time.monotonic() - quiet_since >= self._lease_ms / 1000:
                quiet_since = time.monotonic()
                if not await s.op("follow", s.redis.exists(s.key("lease", stream_id))):
                    yield OwnerLost(stream_id, last_seq)

    async def take_over(self, stream_id: str) -> StoredStream | None:
        s = self._state
        taken = await s.op(
            "takeover", s.redis.set(s.key("lease", stream_id), s.token, nx=True, px=self._lease_ms)
        )
        if not taken:
            return None
        raw = await s.op("takeover", s.redis.get(s.key("meta", stream_id)))
        if raw is None:
            return None
        meta: dict[str, Any] = orjson.loads(raw)
        self._owned.add(stream_id)
        return StoredStream(stream_id, meta["agent"], decode_input(meta["input"]), meta["owner"])

    async def followed(self, stream_id: str) -> bool:
        s = self._state
        return bool(await s.op("followed", s.redis.exists(s.key("seen", stream_id))))
