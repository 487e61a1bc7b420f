"""A stream's lease in Redis lives as long as its owner runs it, from its first moment on."""

from __future__ import annotations

import asyncio
import logging

import pytest
from redis.asyncio import Redis

from proxy.config import ConversationSettings, ResumeSettings, StateSettings
from proxy.engine.inputs import StreamInput
from proxy.engine.shared import StoredStream
from proxy.events import Start
from proxy.state.redis import RedisState
from tests.redis_server import RedisServer

LEASE_S = 0.06
"""Renewed every 20 ms: at least once before the stream's start leaves the writer's buffer."""


async def test_a_new_streams_lease_is_renewed_before_and_after_it_is_written(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = redis_server.prefix()
    settings = StateSettings(backend="redis", key_prefix=prefix, lease_ttl_s=LEASE_S)
    state = RedisState(
        redis_server.url, settings, ResumeSettings(), ConversationSettings(), longest_stream_s=10
    )
    redis = Redis.from_url(redis_server.url)
    await state.start()
    try:
        with caplog.at_level(logging.WARNING):
            state.logs.begin(StoredStream("s1", "a", StreamInput("hi")))
            state.logs.append(
                "s1", Start(stream_id="s1", seq=0, agent="a", model="m", conversation_id=None, created_at=0)
            )
            await asyncio.sleep(5 * LEASE_S)  # what is checked is that nothing expires in this time
            assert await redis.pttl(f"{prefix}lease:s1") > 0
        assert "lease lost" not in caplog.text
    finally:
        await state.aclose()
        await redis.aclose()
