"""`serve --workers N`: N processes on one port, and one consistent /metrics view of all of them."""

from __future__ import annotations

import re

import aiohttp
import orjson

from tests.serving import serve
from tests.support import post_stream

REQUESTS = 12


def requests_total(exposition: str) -> float:
    pattern = re.compile(r'^agent_proxy_requests_total\{[^}]*agent="demo"[^}]*\} ([0-9.e+]+)$', re.M)
    return sum(float(v) for v in pattern.findall(exposition))


async def test_requests_spread_over_workers_sum_to_r_in_one_scrape() -> None:
    async with serve("--workers", "2", env={"AGENT_PROXY_CONFIG": ""}, listening=2) as served:
        pids: set[int] = set()
        # A new connection per request lets the kernel spread them over the workers.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            for _ in range(REQUESTS):
                result = await post_stream(session, served.url, "demo", "hi")
                assert result.end["finish_reason"] == "stop"
            for _ in range(4):  # every scrape, whichever worker answers it, sees all of them
                async with session.get(f"{served.url}/metrics") as resp:
                    assert resp.status == 200
                    assert requests_total(await resp.text()) == REQUESTS
        assert await served.stop() == 0
    for line in served.log:
        if match := re.search(r"pids \[([0-9, ]+)\]", line):
            pids = {int(p) for p in match.group(1).split(", ")}
    assert len(pids) == 2
    # Both workers served streams (one structured log line per finished stream, with its pid).
    served_by = {orjson.loads(line)["pid"] for line in served.log if '"outcome"' in line}
    assert served_by == pids
