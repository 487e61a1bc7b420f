"""The browser playground (DESIGN 12): one static page, served from the package with a strict CSP.

No build step and no third-party origin: the page's files are read once at start-up and served
as they are. The Content-Security-Policy allows scripts, styles and connections
(fetch, WebSocket) to this origin only, and nothing inline.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_TYPES = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "style.css": "text/css",
    "favicon.svg": "image/svg+xml",
}


class Playground:
    def __init__(self) -> None:
        files = resources.files(__package__)
        self._files = {name: (files / name).read_bytes() for name in _TYPES}

    def _file(self, name: str) -> web.Response:
        headers = {
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-cache",
        }
        return web.Response(
            body=self._files[name], content_type=_TYPES[name], charset="utf-8", headers=headers
        )

    async def page(self, request: web.Request) -> web.Response:
        return self._file("index.html")

    async def asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self._files or name == "index.html":
            raise web.HTTPNotFound()
        return self._file(name)

    async def root(self, request: web.Request) -> web.Response:
        if request.method == "HEAD":
            return web.Response()  # Claude Code checks its base URL with `HEAD /` and wants a 200
        raise web.HTTPFound("/playground")
