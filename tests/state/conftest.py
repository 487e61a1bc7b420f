"""The shared-state tests' Redis: the session's real `redis-server` (`redis_server` in
`tests/conftest.py`), a client on it, and a key prefix of each test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.redis_server import RedisServer


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url, socket_timeout=5, socket_connect_timeout=5)
    yield client
    await client.aclose()


@pytest.fixture
def prefix(redis_server: RedisServer) -> str:
    """Keys of this test only: tests share the session's server."""
    return redis_server.prefix()
