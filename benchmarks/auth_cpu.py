"""CPU per request of auth and limits, in process: what `[auth] mode = "keys"` adds to each stream.

    .venv/bin/python benchmarks/auth_cpu.py

End-to-end comparisons (`ab.py --auth`) carry about a millisecond of noise per stream on a shared
machine, far more than this work; timing the pieces directly shows what they cost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiohttp.test_utils import make_mocked_request

from proxy.auth.identity import Caller
from proxy.auth.keys import hash_key, new_key
from proxy.auth.limits import Limiter
from proxy.auth.middleware import Auth, ratelimit_headers
from proxy.auth.settings import AuthSettings
from proxy.events import End, Usage
from proxy.state.limits import MemoryLimitStore

N = 20_000


def per_call_us(fn: Callable[[], object], n: int = N) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


async def main() -> None:
    keys = [new_key() for _ in range(1000)]
    limits = {"requests_per_minute": 10**9, "tokens_per_minute": 10**12, "concurrent_streams": 10**6}
    settings = AuthSettings(
        mode="keys",
        keys=[{"name": f"k{i}", "sha256": hash_key(k), "limits": limits} for i, k in enumerate(keys)],
    )
    limiter = Limiter(MemoryLimitStore())
    auth = Auth(settings, ["a"], limiter=limiter)
    by_key = make_mocked_request(
        "POST", "/v1/agents/a/stream", headers={"Authorization": f"Bearer {keys[500]}"}
    )
    token, _ = auth.signer.issue("k500", "a", 300)
    by_token = make_mocked_request("GET", f"/v1/agents/a/stream?prompt=hi&token={token}")
    key_us = per_call_us(lambda: auth.authenticate(by_key, False))
    token_us = per_call_us(lambda: auth.authenticate(by_token, True))
    print(f"authenticate a key (1000 keys configured):   {key_us:6.2f} µs")
    print(f"authenticate a token in the URL:             {token_us:6.2f} µs")

    caller = Caller(auth.keys.ring.find(keys[500]))  # type: ignore[arg-type]
    end = End(
        stream_id="s", finish_reason="stop", text="", usage=Usage(input_tokens=10, output_tokens=50),
        attempts=1, model="mock:fast", ttft_s=0.01, duration_s=0.1, conversation_id=None,
    )  # fmt: skip
    start = time.perf_counter()
    for _ in range(N):
        grant = await limiter.admit(caller)
        assert grant is not None
        limiter.release(grant, end)
        await limiter.settled()
    admit_release = (time.perf_counter() - start) / N * 1e6
    print(f"admit + release + charge (all three limits): {admit_release:6.2f} µs")
    assert caller.quota is not None
    quota = caller.quota
    headers_us = per_call_us(lambda: ratelimit_headers(quota))
    print(f"x-ratelimit-* headers:                       {headers_us:6.2f} µs")


if __name__ == "__main__":
    asyncio.run(main())
