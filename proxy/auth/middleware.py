"""Auth on HTTP: the credentials middleware, `POST /v1/tokens`, and the `x-ratelimit-*` headers.

Credentials: `Authorization: Bearer <key>` (what OpenAI SDKs send) or `x-api-key: <key>`. Browsers
cannot set headers on `EventSource` or a WebSocket, so the routes in `TOKEN_ROUTES` also take a
short-lived token as `?token=`; nothing takes a key in a URL (URLs end up in access logs). Every
route but `PUBLIC_PATHS` needs a credential, and a WebSocket upgrade without one is refused with 401
before the upgrade, since the middleware runs before the handler.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

import orjson
from aiohttp import web

from proxy.auth.identity import Caller, Identity, Quota
from proxy.auth.keys import Keys
from proxy.auth.limits import Limiter
from proxy.auth.settings import AuthSettings
from proxy.auth.tokens import TOKEN_PREFIX, TokenError, TokenSigner
from proxy.engine import Engine
from proxy.engine.refusals import ForbiddenAgent
from proxy.errors import RequestError
from proxy.transports.anthropic.errors import anthropic_error
from proxy.transports.http import CALLER, error_response, read_json_object
from proxy.transports.openai.errors import openai_error
from proxy.transports.refusal_lines import REFUSAL_REASON

log = logging.getLogger("agent_proxy.auth")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PUBLIC_PATHS: Final = frozenset(
    {"/healthz", "/readyz", "/metrics", "/openapi.json", "/", "/playground", "/playground/{name}"}
)
"""Routes that need no credential (probes, scrapes, the description, the static page)."""
TOKEN_ROUTES: Final = frozenset(
    {
        ("GET", "/v1/agents/{agent}/stream"),
        ("GET", "/v1/ws"),
        ("GET", "/v1/streams/{stream_id}"),
    }
)
"""(method, route) that accept a short-lived token, as `?token=` or as the bearer credential."""
OPENAI_PATHS: Final = frozenset(
    {"/v1/chat/completions", "/v1/models", "/v1/responses", "/v1/responses/{response_id}"}
)
"""Routes whose errors use OpenAI's shape."""
ANTHROPIC_PATHS: Final = frozenset({"/v1/messages", "/v1/messages/count_tokens"})
"""Routes whose errors use Anthropic's shape."""
AUTH_FAILURE_REASONS: Final = (
    "missing", "invalid_key", "invalid_token", "expired_token", "key_in_url", "token_not_accepted",
)  # fmt: skip


class Unauthorized(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else request.path


def _header_credential(request: web.Request) -> str | None:
    authorization = request.headers.get("Authorization")
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.headers.get("x-api-key") or None


def _duration(seconds: float) -> str:
    """OpenAI's format of `x-ratelimit-reset-*`: `20ms`, `1.5s`, `6m0s`."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.0f}s" if minutes else f"{seconds:.3g}s"


def ratelimit_headers(quota: Quota) -> dict[str, str]:
    headers: dict[str, str] = {}
    for limit, decision in quota.items():
        headers[f"x-ratelimit-limit-{limit}"] = str(decision.limit)
        headers[f"x-ratelimit-remaining-{limit}"] = str(decision.remaining)
        headers[f"x-ratelimit-reset-{limit}"] = _duration(decision.reset_s)
    return headers


class Auth:
    """`[auth] mode = "keys"` for one app: keys, token signer, limiter, and their HTTP handlers."""

    def __init__(
        self,
        settings: AuthSettings,
        agents: list[str],
        *,
        limiter: Limiter,
        on_failure: Callable[[str], None] = lambda reason: None,
        signer: TokenSigner | None = None,
    ) -> None:
        self.settings = settings
        self.keys = Keys(settings.keys, settings.keys_file, agents)
        self.signer = signer or TokenSigner(settings.token_secret())
        self.limiter = limiter
        self._on_failure = on_failure

    def install(self, app: web.Application, engine: Engine) -> None:
        app[AUTH] = self
        check = self.check

        @web.middleware
        async def credentials(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await check(request, handler)

        app.middlewares.append(credentials)
        app.on_response_prepare.append(_quota_headers)
        self._engine = engine
        app.router.add_post("/v1/tokens", self.post_tokens)

    async def check(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The middleware: a `Caller` on the request, or 401 before the handler runs."""
        route = _route(request)
        # A path no route takes is a 404 (or 405) for anyone: telling a caller without a key that its
        # URL is wrong reveals nothing that GET /openapi.json does not.
        if route in PUBLIC_PATHS or request.match_info.http_exception is not None:
            return await handler(request)
        try:
            identity, agent = self.authenticate(request, (request.method, route) in TOKEN_ROUTES)
        except Unauthorized as exc:
            self._on_failure(exc.reason)
            request[REFUSAL_REASON] = exc.reason
            if route in OPENAI_PATHS:
                response = openai_error(401, "unauthorized", exc.message)
            elif route in ANTHROPIC_PATHS:
                response = anthropic_error(401, exc.message)
            else:
                response = error_response(RequestError(401, "unauthorized", exc.message))
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        request[CALLER] = Caller(identity.bound_to(agent), self._named, agent)
        return await handler(request)

    def _named(self, name: str) -> Identity | None:
        return self.keys.ring.named(name)

    def authenticate(self, request: web.Request, takes_tokens: bool) -> tuple[Identity, str | None]:
        """The caller's identity, and the agent its token is bound to (None: not bound)."""
        ring = self.keys.ring
        token: str | None = None
        if request.query_string:
            query = request.query
            token = query.get("token")
            if "api_key" in query or (token is not None and ring.find(token) is not None):
                raise Unauthorized(
                    "key_in_url",
                    "a key must not travel in a URL (URLs end up in logs): send it in the Authorization "
                    "header, or trade it for a short-lived token with POST /v1/tokens",
                )
        credential = _header_credential(request)
        if credential is not None:
            identity = ring.find(credential)
            if identity is not None:
                return identity, None
            if not credential.startswith(TOKEN_PREFIX):
                raise Unauthorized("invalid_key", "the key is not valid")
            token = credential
        if token is None:
            raise Unauthorized(
                "missing", "this endpoint needs a key: `Authorization: Bearer <key>` or `x-api-key: <key>`"
            )
        if not takes_tokens:
            raise Unauthorized(
                "token_not_accepted",
                "tokens are accepted only by GET /v1/agents/{agent}/stream, /v1/ws and GET /v1/streams/{id}; "
                "send a key",
            )
        try:
            claims = self.signer.verify(token)
        except TokenError as exc:
            message = "the token has expired" if exc.reason == "expired_token" else "the token is not valid"
            raise Unauthorized(exc.reason, message) from None
        identity = ring.named(claims.key)
        if identity is None:  # its key was revoked
            raise Unauthorized("invalid_token", "the token is not valid")
        return identity, claims.agent

    async def post_tokens(self, request: web.Request) -> web.Response:
        """`POST /v1/tokens` with a key: `{"token", "expires_at"}`. Body (optional): `agent` binds the
        token to one agent, `ttl_s` its lifetime."""
        identity = request[CALLER].identity
        body = await read_json_object(request) if request.can_read_body else {}
        agent = body.get("agent")
        if agent is not None:
            if not isinstance(agent, str):
                raise RequestError(422, "invalid_body", "`agent` must be the name of an agent")
            self._engine.check_agent(agent)
            if not identity.may_use(agent):
                raise ForbiddenAgent(f"this key may not use agent {agent!r}")
        ttl = body.get("ttl_s", self.settings.token_ttl_s)
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl <= 3600:
            raise RequestError(422, "invalid_body", "`ttl_s` must be a number of seconds from 0 to 3600")
        token, expires_at = self.signer.issue(identity.name, agent, ttl)
        body = {"token": token, "expires_at": expires_at}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    def reload(self) -> None:
        """SIGHUP: re-read the keys file (a bad one keeps the keys in force and logs why)."""
        if self.settings.keys_file is None:
            log.info("SIGHUP: no keys_file to re-read")
            return
        self.keys.reload()


AUTH = web.AppKey("auth", Auth)


async def _quota_headers(request: web.Request, response: web.StreamResponse) -> None:
    caller = request.get(CALLER)
    if caller is not None and caller.quota:
        response.headers.update(ratelimit_headers(caller.quota))


async def tokens_without_auth(request: web.Request) -> web.Response:
    """`POST /v1/tokens` with `mode = "none"`: nothing to trade."""
    raise RequestError(
        404, "auth_disabled", 'authentication is off ([auth] mode = "none"): no token is needed'
    )
