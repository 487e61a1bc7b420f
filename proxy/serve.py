"""`agent-proxy serve` and `agent-proxy check-config`: load settings, run the app, drain on SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from aiohttp import web

from proxy.app import create_app, drain
from proxy.auth.middleware import AUTH
from proxy.auth.settings import exposure_problem
from proxy.config import CONFIG_ENV, ConfigError, Settings, load_settings
from proxy.observability.stream_log import configure_logging
from proxy.workers import die_with_parent, run_workers

log = logging.getLogger("agent_proxy")


def _load(path: str | None) -> Settings | None:
    try:
        return load_settings(path)
    except ConfigError as exc:
        print(f"invalid configuration:\n{exc}", file=sys.stderr)
        return None


def _with_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    update: dict[str, Any] = {
        k: v for k in ("host", "port", "workers") if (v := getattr(args, k)) is not None
    }
    if not update:
        return settings
    return settings.model_copy(update={"server": settings.server.model_copy(update=update)})


def _banner(settings: Settings) -> str:
    url = f"http://{settings.server.host}:{settings.server.port}"
    if settings.demo:
        return (
            f"agent-proxy serving the built-in demo on {url}: mock upstream in this process, agent 'demo'. "
            f"Pass a real config with --config FILE or {CONFIG_ENV}=FILE."
        )
    return (
        f"agent-proxy serving {len(settings.agents)} agents ({', '.join(sorted(settings.agents))}) on {url}"
    )


def _nothing_to_reload() -> None:
    log.info('SIGHUP: no keys to re-read ([auth] mode = "none")')


async def serve_app(settings: Settings, reuse_port: bool = False) -> None:
    """Serve until SIGTERM/SIGINT, then drain and return."""
    app = await create_app(settings)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    server = settings.server
    # A deep accept queue: a burst of new streams must wait, not be refused.
    site = web.TCPSite(runner, server.host, server.port, reuse_port=reuse_port, backlog=4096)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    auth = app.get(AUTH)
    loop.add_signal_handler(signal.SIGHUP, auth.reload if auth is not None else _nothing_to_reload)
    log.info("listening on %s", ", ".join(str(a) for a in runner.addresses))
    try:
        await stop.wait()
        await drain(app, server.drain_timeout_s)
    finally:
        await runner.cleanup()
    log.info("stopped")


def run_serve(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    if settings is None:
        return 2
    settings = _with_flags(settings, args)
    exposed = exposure_problem(settings.server.host, settings.auth)
    if exposed is not None:  # `--host` is applied after the file was validated
        print(f"invalid configuration:\n{exposed}", file=sys.stderr)
        return 2
    configure_logging(settings.observability.log_level, settings.observability.log_format)
    if settings.server.workers > 1:
        log.info(_banner(settings))
        return run_workers(settings, args)
    if args.worker:
        die_with_parent()
    else:
        log.info(_banner(settings))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve_app(settings, reuse_port=args.worker))
    return 0


def run_check_config(args: argparse.Namespace) -> int:
    settings = _load(args.file)
    if settings is None:
        return 2
    from proxy.agents import ModelBuildError, build_registry

    try:
        build_registry(settings)
    except ModelBuildError as exc:
        print(f"invalid configuration:\n{args.file}: {exc}", file=sys.stderr)
        return 2
    print(f"{args.file}: OK ({len(settings.agents)} agents: {', '.join(sorted(settings.agents))})")
    return 0


def register(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the proxy (the built-in demo when no config is given)")
    serve.add_argument("--config", help=f"TOML config file (default: ${CONFIG_ENV}, else the built-in demo)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="worker processes sharing the port (SO_REUSEPORT)")
    serve.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(func=run_serve)
    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("file")
    check.set_defaults(func=run_check_config)
