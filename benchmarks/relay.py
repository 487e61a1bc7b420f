"""The floor for `make bench-peers`: an aiohttp relay that forwards `POST /v1/chat/completions` to an
upstream and copies the response bytes back without parsing them.

    .venv/bin/python benchmarks/relay.py --upstream http://127.0.0.1:9100 --port 8090
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

# Hop-by-hop or recomputed by aiohttp for the relayed response.
SKIP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


def make_app(upstream: str) -> web.Application:
    """The relay's app, forwarding to `upstream` (the base URL, without `/v1`)."""
    url = upstream.rstrip("/") + "/v1/chat/completions"
    session_key = web.AppKey("session", aiohttp.ClientSession)

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        # No connection cap: a gateway's pool limit would be a bottleneck the floor should not have.
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
            app[session_key] = session
            yield

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        async with request.app[session_key].post(url, data=body, headers=headers) as upstream_resp:
            response = web.StreamResponse(
                status=upstream_resp.status,
                headers={k: v for k, v in upstream_resp.headers.items() if k.lower() not in SKIP_HEADERS},
            )
            await response.prepare(request)
            async for data in upstream_resp.content.iter_any():
                await response.write(data)
            await response.write_eof()
            return response

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/v1/chat/completions", relay)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream", required=True, help="upstream base URL, e.g. http://127.0.0.1:9100")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop  # the proxy runs on uvloop too: the floor should not pay for the default loop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(make_app(args.upstream), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
