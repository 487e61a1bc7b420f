"""`agent-proxy serve` and `agent-proxy check-config`: load settings, run the app, drain on SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from typing import Any, NoReturn

from aiohttp import web

from proxy.agents import check_models_and_secrets
from proxy.app import create_app, drain
from proxy.auth.middleware import AUTH
from proxy.auth.settings import exposure_problem
from proxy.config import CONFIG_ENV, ConfigError, Settings, load_settings, unused_environment
from proxy.observability.stream_log import configure_logging
from proxy.open_files import raise_open_files, streams_that_fit
from proxy.transports.server import ProxyRunner
from proxy.workers import die_with_parent, reserve_port, run_workers

log = logging.getLogger("agent_proxy")

FORCE_QUIT_INTERRUPTS = 3


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


def _banner(settings: Settings, port: int) -> str:
    url = f"http://{settings.server.host}:{port}"
    if settings.demo:
        return (
            f"agent-proxy serving the built-in demo on {url}: mock upstream in this process, agent 'demo' "
            f"(and its fault agents). Playground: {url}/playground. "
            f"Pass a real config with --config FILE or {CONFIG_ENV}=FILE."
        )
    return (
        f"agent-proxy serving {len(settings.agents)} agents ({', '.join(sorted(settings.agents))}) on {url}"
    )


def _nothing_to_reload() -> None:
    log.info('SIGHUP: no keys to re-read ([auth] mode = "none")')


class CannotListen(Exception):
    """The address cannot be bound; `str()` is the one line a user needs (no traceback helps)."""

    def __init__(self, host: str, port: int, error: OSError) -> None:
        reason = os.strerror(error.errno).lower() if error.errno else str(error)
        super().__init__(f"cannot listen on {host}:{port}: {reason}")


def _on_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM or a first Ctrl-C: drain, then stop. A third Ctrl-C quits at once, cutting streams."""
    loop = asyncio.get_running_loop()
    interrupts = 0

    def interrupted() -> None:
        nonlocal interrupts
        interrupts += 1
        stop.set()
        if interrupts >= FORCE_QUIT_INTERRUPTS:
            log.warning("quitting at once: running streams are cut off")
            _exit_now(128 + signal.SIGINT)
        left = FORCE_QUIT_INTERRUPTS - interrupts
        log.info("draining; Ctrl-C %s more to quit at once", ("once", "twice")[left - 1])

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, interrupted)


async def serve_app(settings: Settings, reuse_port: bool = False, banner: bool = True) -> None:
    """Serve until SIGTERM/SIGINT, then drain and return; the banner says where, once listening."""
    stop = asyncio.Event()
    _on_stop_signals(stop)  # before anything is logged: a client may signal as soon as it reads a line
    app = await create_app(settings)
    auth = app.get(AUTH)
    asyncio.get_running_loop().add_signal_handler(
        signal.SIGHUP, auth.reload if auth is not None else _nothing_to_reload
    )
    server = settings.server
    runner = ProxyRunner(app, allow_any_origin="*" in server.cors_allow_origins, access_log=None)
    await runner.setup()
    # What the process built to start (modules, settings, agents, the app) lives as long as it
    # does: out of the collector's generations, a collection walks only what streams create.
    gc.freeze()
    # A stream allocates thousands of short-lived objects that reference counting frees; with the
    # default 700 a young collection runs every few chunks, for the few that are cycles.
    gc.set_threshold(10_000, 20, 20)
    try:
        # A deep accept queue: a burst of new streams must wait, not be refused.
        site = web.TCPSite(runner, server.host, server.port, reuse_port=reuse_port, backlog=4096)
        try:
            await site.start()
        except OSError as exc:
            raise CannotListen(server.host, server.port, exc) from None
        if banner:
            log.info(_banner(settings, runner.addresses[0][1]))
        _check_open_files(server.max_concurrent_streams)
        log.info("listening on %s", ", ".join(str(a) for a in runner.addresses))
        await stop.wait()
        await drain(app, server.drain_timeout_s)
    finally:
        await runner.cleanup()
    log.info("stopped")


def run_serve(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    if settings is None:
        return 2
    # Serving with a secret missing would send requests that can only fail (`Bearer ` with no key).
    problems, unset = check_models_and_secrets(settings)
    if problems or unset:
        _invalid(args.config or os.environ.get(CONFIG_ENV) or "configuration", problems + unset)
        return 2
    settings = _with_flags(settings, args)
    exposed = exposure_problem(settings.server.host, settings.auth)
    if exposed is not None:  # `--host` is applied after the file was validated
        print(f"invalid configuration:\n{exposed}", file=sys.stderr)
        return 2
    observability = settings.observability
    configure_logging(observability.log_level, args.log_format or observability.log_format)
    if not args.worker:  # the parent has said it
        for line in unused_environment(settings):
            log.warning(line)
    server = settings.server
    if server.workers > 1 and settings.state.backend == "memory":
        log.error(
            '--workers %d needs shared state: with [state] backend = "memory" each worker keeps its '
            "own conversations and stream logs, so a continuation or a resume that reaches another "
            'worker fails. Set [state] backend = "redis" with the URL in $%s, or run one worker.',
            server.workers,
            settings.state.redis_url_env,
        )
        return 2
    if server.workers > 1:
        try:
            reserved = reserve_port(server.host, server.port)
        except OSError as exc:
            return _cannot_listen(CannotListen(server.host, server.port, exc))
        log.info(_banner(settings, reserved.getsockname()[1]))
        return run_workers(settings, args, reserved)
    if args.worker:
        die_with_parent()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(serve_app(settings, reuse_port=args.worker, banner=not args.worker))
    except CannotListen as exc:
        return _cannot_listen(exc)
    _exit_now(0)


def _check_open_files(max_streams: int) -> None:
    limit = raise_open_files()
    fits = streams_that_fit(limit)
    if fits < max_streams:
        log.warning(
            "the open-file limit (%d) fits about %d concurrent streams, fewer than "
            "server.max_concurrent_streams (%d): past it new connections fail instead of getting 503 "
            "overloaded. Raise the limit (ulimit -n, systemd LimitNOFILE, the container's nofile) "
            "or lower max_concurrent_streams.",
            limit,
            fits,
            max_streams,
        )


def _cannot_listen(exc: CannotListen) -> int:
    print(exc, file=sys.stderr)
    return 1


def _exit_now(code: int) -> NoReturn:
    """Exit without tearing the interpreter down: everything was closed and flushed by the app's
    clean-up, and freeing thousands of modules (pydantic-ai, openai, OpenTelemetry) took over a second
    on a busy machine, which counts against a pod's grace period."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_check_config(args: argparse.Namespace) -> int:
    """Every problem at once; unset secrets are warnings (CI checks configs without them)."""
    settings = _load(args.file)
    if settings is None:
        return 2
    problems, unset = check_models_and_secrets(settings)
    for line in unset:
        print(f"{args.file}: warning: {line}", file=sys.stderr)
    for line in unused_environment(settings):
        print(f"warning: {line}", file=sys.stderr)
    if problems:
        _invalid(args.file, problems)
        return 2
    print(f"{args.file}: OK ({len(settings.agents)} agents: {', '.join(sorted(settings.agents))})")
    return 0


def _invalid(source: str, lines: list[str]) -> None:
    print("invalid configuration:", *(f"{source}: {line}" for line in lines), sep="\n", file=sys.stderr)


def register(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the proxy (the built-in demo when no config is given)")
    serve.add_argument("--config", help=f"TOML config file (default: ${CONFIG_ENV}, else the built-in demo)")
    serve.add_argument("--host", help="address to listen on (default: [server] host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on, 0 for any free one (default: 8080)")
    serve.add_argument(
        "--log-format",
        choices=["auto", "json", "text"],
        help="log lines on stderr: text on a terminal and JSON otherwise (auto, the default), or either",
    )
    serve.add_argument("--workers", type=int, help="worker processes sharing the port (SO_REUSEPORT)")
    serve.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(func=run_serve)
    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("file")
    check.set_defaults(func=run_check_config)
