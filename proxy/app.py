"""create_app(settings) -> aiohttp Application: routes, start-up, drain and shutdown."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from proxy.agents import build_registry
from proxy.auth.identity import ANONYMOUS
from proxy.auth.limits import Limiter
from proxy.auth.middleware import Auth, tokens_without_auth
from proxy.config import DEMO_UPSTREAM, Settings, UpstreamSettings
from proxy.engine import Engine
from proxy.engine.breaker import Breakers
from proxy.engine.refusals import Refused
from proxy.engine.runtime import AgentRegistry
from proxy.errors import RequestError
from proxy.loop_lag import LoopLag
from proxy.mock_upstream import MockServer, start_mock
from proxy.observability.refusal_log import RefusalLog
from proxy.observability.runtime import Telemetry
from proxy.openapi import install_openapi
from proxy.playground import Playground
from proxy.state.build import build_state
from proxy.state.limits import MemoryLimitStore
from proxy.state.redis import RedisState
from proxy.state.redis_limits import RedisLimitStore
from proxy.transports.ag_ui import AG_UI
from proxy.transports.anthropic import AnthropicTransport
from proxy.transports.cors import install_cors
from proxy.transports.http import ARRIVED_AT, CALLER, MAX_BODY_BYTES, error_response
from proxy.transports.openai import OpenAITransport
from proxy.transports.refusal_lines import refusal_lines
from proxy.transports.responses import ResponsesTransport
from proxy.transports.resume import ResumeTransport
from proxy.transports.run import RunTransport
from proxy.transports.server import SERVER_HEADER
from proxy.transports.sse import ChatSSETransport, SSETransport
from proxy.transports.unrouted import unrouted_response
from proxy.transports.vercel_ai import VERCEL_AI
from proxy.transports.ws import WSTransport

log = logging.getLogger("agent_proxy")

ENGINE = web.AppKey("engine", Engine)
TELEMETRY = web.AppKey("telemetry", Telemetry)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES = {413: "body_too_large", 400: "bad_request"}


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[ARRIVED_AT] = time.monotonic()
    try:
        return await handler(request)
    except (RequestError, Refused) as exc:
        return error_response(exc)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
        return unrouted_response(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        return error_response(RequestError(exc.status, code, exc.reason))


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def _start_demo_upstream(settings: Settings) -> tuple[Settings, MockServer]:
    mock = await start_mock()
    upstreams = {**settings.upstreams, DEMO_UPSTREAM: UpstreamSettings(base_url=mock.base_url)}
    return settings.model_copy(update={"upstreams": upstreams}), mock


async def create_app(settings: Settings) -> web.Application:
    """The proxy application; with `settings.demo` it also runs the mock upstream in process."""
    mock: MockServer | None = None
    if settings.demo:
        settings, mock = await _start_demo_upstream(settings)
    auth_settings = settings.auth
    telemetry = Telemetry(
        settings.observability,
        agents=list(settings.agents),
        models=_model_names(settings),
        keys=[k.name for k in auth_settings.keys] if auth_settings.mode == "keys" else [ANONYMOUS.name],
        max_keys=auth_settings.max_key_labels,
    )
    state = build_state(settings, telemetry.state_metrics)
    auth: Auth | None = None
    if auth_settings.mode == "keys":
        metrics = telemetry.metrics
        # Limits hold across processes and replicas where the rest of the state does.
        limits = (
            RedisLimitStore(state.redis, f"{settings.state.key_prefix}limits:")
            if isinstance(state, RedisState)
            else MemoryLimitStore()
        )
        auth = Auth(
            auth_settings,
            list(settings.agents),
            limiter=Limiter(limits, on_limited=metrics.rate_limited),
            on_failure=metrics.auth_failed,
        )
    lag = LoopLag()
    registry = build_registry(settings, instrumentation=telemetry.instrumentation_settings(), lag=lag)
    await registry.start()
    await state.start()
    lag.start()
    engine = Engine(
        registry,
        state,
        Breakers(settings.circuit.failure_threshold, settings.circuit.cooldown_s),
        max_concurrent_streams=settings.server.max_concurrent_streams,
        max_prompt_chars=settings.server.max_prompt_chars,
        grace_s=settings.resume.grace_s,
        metrics=telemetry.state_metrics,
        limiter=auth.limiter if auth is not None else None,
        lag=lag,
    )
    telemetry.metrics.loop.watch(lag, engine.gate)
    observer = telemetry.observer
    server = settings.server
    resume = ResumeTransport(engine, server.heartbeat_interval_s)
    sse = SSETransport(engine, observer, server.heartbeat_interval_s, resume)
    ws = WSTransport(
        engine,
        observer,
        server.heartbeat_interval_s,
        server.ws_max_frame_bytes,
        server.ws_max_streams_per_socket,
    )
    openai = OpenAITransport(engine, observer, server.heartbeat_interval_s)
    responses = ResponsesTransport(engine, observer, server.heartbeat_interval_s)
    anthropic = AnthropicTransport(engine, observer, server.heartbeat_interval_s)
    run = RunTransport(engine, observer)
    vercel_ai = ChatSSETransport(engine, observer, server.heartbeat_interval_s, VERCEL_AI)
    ag_ui = ChatSSETransport(engine, observer, server.heartbeat_interval_s, AG_UI)
    playground = Playground()

    app = web.Application(
        client_max_size=server.max_body_bytes, middlewares=[refusal_lines(RefusalLog()), _errors]
    )
    install_cors(app, server.cors_allow_origins)
    app.on_response_prepare.append(_server_header)
    app[ENGINE] = engine
    app[MAX_BODY_BYTES] = server.max_body_bytes
    app[TELEMETRY] = telemetry
    app.router.add_post("/v1/agents/{agent}/stream", sse.post)
    app.router.add_get("/v1/agents/{agent}/stream", sse.get)
    app.router.add_get("/v1/streams/{stream_id}", resume.get)
    app.router.add_get("/v1/ws", ws.handle)
    app.router.add_post("/v1/agents/{agent}/run", run.post)
    app.router.add_post("/v1/chat/completions", openai.chat_completions)
    app.router.add_post("/v1/responses", responses.create)
    app.router.add_get("/v1/responses/{response_id}", responses.get)
    app.router.add_delete("/v1/responses/{response_id}", responses.delete)
    app.router.add_post("/v1/messages", anthropic.messages)
    app.router.add_post("/v1/messages/count_tokens", anthropic.count_tokens)
    app.router.add_post("/v1/agents/{agent}/vercel-ai", vercel_ai.post)
    app.router.add_post("/v1/agents/{agent}/ag-ui", ag_ui.post)
    app.router.add_get("/v1/agents", _agents)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/", playground.root)
    app.router.add_get("/playground", playground.page)
    app.router.add_get("/playground/{name}", playground.asset)
    if auth is not None:
        auth.install(app, engine)
    else:
        app.router.add_post("/v1/tokens", tokens_without_auth)
    install_openapi(app, auth=auth is not None)

    async def _shutdown(app: web.Application) -> None:
        lag.stop()
        await state.aclose()
        await registry.aclose()
        telemetry.shutdown()
        if mock is not None:
            await mock.close()

    async def _close_websockets(app: web.Application) -> None:
        await ws.close_all()

    # on_shutdown runs after the drain and before aiohttp waits for the handlers still running.
    app.on_shutdown.append(_close_websockets)
    app.on_cleanup.append(_shutdown)
    return app


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SERVER_HEADER)


def _model_names(settings: Settings) -> list[str]:
    return sorted({m for a in settings.agents.values() for m in [a.model, *a.fallback_models]})


async def _metrics(request: web.Request) -> web.Response:
    body, content_type = request.app[TELEMETRY].render_metrics(request.headers.get("Accept"))
    return web.Response(body=body, headers={"Content-Type": content_type})


async def _healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    if engine.draining:
        return _json({"status": "draining"}, status=503)
    if not engine.state.healthy:
        return _json({"status": "state_unavailable"}, status=503)
    return _json({"status": "ready", "agents": len(engine.registry.agents)})


def _visible_agents(request: web.Request) -> list[str]:
    """The agents the caller may use, sorted."""
    caller = request.get(CALLER)
    identity = caller.identity if caller is not None else ANONYMOUS
    return sorted(name for name in request.app[ENGINE].registry.agents if identity.may_use(name))


def _agent_list(registry: AgentRegistry, engine: Engine, names: list[str]) -> list[dict[str, object]]:
    states = engine.breakers.states()
    runtimes = [(name, registry.agents[name]) for name in names]
    return [
        {
            "name": name,
            "model": rt.models[0].name,
            "fallback_models": [m.name for m in rt.models[1:]],
            "circuits": {m.name: states.get(m.name, "closed") for m in rt.models},
            "retry": rt.retry.model_dump(),
            "timeouts": rt.timeouts.model_dump(),
        }
        for name, rt in runtimes
    ]


async def _agents(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    return _json({"agents": _agent_list(engine.registry, engine, _visible_agents(request))})


async def _models(request: web.Request) -> web.Response:
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "agent-proxy"}
        for name in _visible_agents(request)
    ]
    return _json({"object": "list", "data": data})


async def drain(app: web.Application, timeout: float) -> None:
    """SIGTERM: /readyz turns 503, new streams are refused, running ones get `timeout` s."""
    engine = app[ENGINE]
    log.info("draining: %d streams running, up to %.0f s", len(engine.active), timeout)
    await engine.drain(timeout)
