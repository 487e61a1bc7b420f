"""The stream log writer's own Redis connection: replies in order, error replies returned, and a
batch after a Redis restart goes through."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from proxy.state.redis_batches import BatchConnection
from tests.redis_server import RedisServer


async def test_replies_come_in_order_and_an_error_reply_does_not_stop_the_batch(
    redis_server: RedisServer,
) -> None:
    redis = Redis.from_url(redis_server.url, socket_timeout=1, socket_connect_timeout=1)
    batches = BatchConnection(redis)
    key = redis_server.prefix() + "k"
    try:
        ok, wrong_type, count = await batches.execute([("SET", key, 1), ("HGET", key, "f"), ("INCR", key)])
        assert (ok, count) == (b"OK", 2)
        assert isinstance(wrong_type, ResponseError)
    finally:
        await batches.aclose()
        await redis.aclose()


async def test_the_first_batch_after_a_redis_restart_goes_through(redis_server: RedisServer) -> None:
    redis = Redis.from_url(redis_server.url, socket_timeout=1, socket_connect_timeout=1)
    batches = BatchConnection(redis)
    key = redis_server.prefix() + "k"
    try:
        assert await batches.execute([("SET", key, b"before")]) == [b"OK"]
        redis_server.stop()
        redis_server.start()
        assert await batches.execute([("SET", key, b"after"), ("GET", key)]) == [b"OK", b"after"]
    finally:
        await batches.aclose()
        await redis.aclose()
