"""The `mock-upstream` subcommand: serve the mock until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from proxy.mock_upstream.behaviour import BehaviourError, MockBehaviour, option_help

log = logging.getLogger("proxy.mock_upstream")
_DEST_PREFIX = "mock_opt_"


def register(subparsers: Any) -> None:
    """Add `mock-upstream` to an argparse subparsers object; `args.func(args)` returns an exit code."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "mock-upstream",
        help="run the fake upstream of every provider wire (shaping and fault injection)",
        description=(
            "Fake LLM upstream speaking OpenAI Chat Completions and Responses, Azure OpenAI, Anthropic "
            "Messages, Gemini and Bedrock Converse. The flags set the default behaviour; "
            "a request selects its own with the model name '<label>?key=value&...', whose keys are "
            "the flag names with '_' (see `python -m pydoc proxy.mock_upstream`)."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9100, help="port to listen on (default 9100)")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    group = parser.add_argument_group("default behaviour (same values as the model-name parameters)")
    for name, help_text in option_help().items():
        group.add_argument(
            "--" + name.replace("_", "-"),
            dest=_DEST_PREFIX + name,
            metavar="VALUE",
            default=None,
            help=help_text,
        )
    parser.set_defaults(func=run)


def behaviour_from_args(args: argparse.Namespace) -> MockBehaviour:
    """The default behaviour the flags describe; raises `BehaviourError`."""
    overrides = {
        key[len(_DEST_PREFIX) :]: value
        for key, value in vars(args).items()
        if key.startswith(_DEST_PREFIX) and value is not None
    }
    return MockBehaviour().with_overrides(overrides)


def run(args: argparse.Namespace) -> int:
    try:
        defaults = behaviour_from_args(args)
    except BehaviourError as exc:
        print(f"mock-upstream: --{exc.key.replace('_', '-')}: {exc.message}", file=sys.stderr)
        return 2
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=str(args.log_level).upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    return _run_loop(lambda: _serve(args.host, args.port, defaults))


def _run_loop(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main())


async def _serve(host: str, port: int, defaults: MockBehaviour) -> int:
    from proxy.mock_upstream.server import start_mock

    try:
        server = await start_mock(host, port, defaults, shutdown_timeout=1.0)
    except OSError as exc:
        log.error("mock upstream cannot listen on %s:%s: %s", host, port, exc)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows
            loop.add_signal_handler(sig, stop.set)
    log.info(
        "mock upstream listening on %s (OpenAI base URL; the other wires at its root); "
        "select behaviours by model name, e.g. "
        "'mock?chunks=64&gap_ms=10' or 'flaky?fault=http500&fault_times=2' "
        "(keys: python -m pydoc proxy.mock_upstream); stats at %s/_mock/stats",
        server.base_url,
        server.url,
    )
    try:
        await stop.wait()
    finally:
        log.info("mock upstream stopping")
        await server.close()
    return 0
