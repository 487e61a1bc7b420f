"""The `agent-proxy loadtest` subcommand: flags -> LoadConfig, run, print, write JSON and HTML."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson
from rich.console import Console

from proxy.loadtest.config import ARRIVALS, TARGETS, LoadConfig, load_prompts
from proxy.loadtest.console import live_progress, print_summary
from proxy.loadtest.report import write_report
from proxy.loadtest.result import LoadResult
from proxy.loadtest.runner import LiveStats, run_load

T = TypeVar("T")

HELP = "Load-test an LLM streaming endpoint (the proxy's SSE, WebSocket or any OpenAI-compatible API)."
EPILOG = """\
TTFT runs from the intended send time to the first delta/output event (first content chunk for
openai), not to the response headers. ITL is reported two ways: the distribution of every gap
between consecutive content chunks, and per request (E2E - TTFT) / (chunks - 1). E2E runs to the
end event / [DONE]. In an open loop (--rate) the intended send time is the schedule's, so queueing
is part of the latency (no coordinated omission). Warm-up requests are excluded from every figure.
"""


def _warmup(text: str) -> tuple[int, float]:
    """`N` requests or `Ns` seconds."""
    try:
        if text.endswith("s"):
            seconds = float(text[:-1])
            if seconds < 0:
                raise ValueError
            return 0, seconds
        count = int(text)
        if count < 0:
            raise ValueError
        return count, 0.0
    except ValueError:
        msg = f"expected a request count (10) or seconds (5s), got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def _positive(kind: Callable[[str], T]) -> Callable[[str], T]:
    def parse(text: str) -> T:
        value = kind(text)
        if not value > 0:  # type: ignore[operator]
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return value

    parse.__name__ = getattr(kind, "__name__", "value")
    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    t = p.add_argument_group("target")
    t.add_argument("--target", choices=TARGETS, default="sse", help="wire protocol (default: sse)")
    t.add_argument("--url", default="http://127.0.0.1:8080", help="base URL (default: %(default)s)")
    t.add_argument(
        "--agent",
        "--model",
        dest="agent",
        default="demo",
        help="agent name; for --target openai the model string (default: %(default)s)",
    )
    prompts = t.add_mutually_exclusive_group()
    prompts.add_argument("--prompt", help="the prompt of every request (default: 'Hello')")
    prompts.add_argument(
        "--prompts-file", type=Path, help="prompts, one per line or JSONL with a 'prompt' field, used in turn"
    )
    t.add_argument(
        "--header",
        "-H",
        action="append",
        type=_header,
        default=[],
        metavar="'NAME: VALUE'",
        help="extra request header, repeatable (e.g. authorization)",
    )
    t.add_argument(
        "--ws-streams-per-socket",
        type=_positive(int),
        default=1,
        metavar="N",
        help="ws: requests multiplexed per socket (default 1: one socket per request in flight)",
    )

    s = p.add_argument_group("load shape and bounds")
    loop = s.add_mutually_exclusive_group()
    loop.add_argument(
        "--concurrency",
        "-c",
        type=_positive(int),
        metavar="N",
        help="closed loop: N requests in flight, each sent when one ends (default 1)",
    )
    loop.add_argument(
        "--rate",
        "-r",
        type=_positive(float),
        metavar="R",
        help="open loop: R requests per second, whatever the answers take",
    )
    s.add_argument(
        "--arrival", choices=ARRIVALS, default="constant", help="open-loop arrivals (default: constant)"
    )
    s.add_argument("--seed", type=int, help="random seed for --arrival poisson (same seed, same schedule)")
    s.add_argument(
        "--max-in-flight",
        type=_positive(int),
        default=4096,
        metavar="N",
        help="open loop: cap on requests in flight; later ones wait, and the wait counts (default 4096)",
    )
    s.add_argument(
        "--ramp-up",
        type=float,
        default=0.0,
        metavar="S",
        help="closed loop: start the workers evenly over S seconds instead of all at once",
    )
    s.add_argument("--requests", "-n", type=_positive(int), metavar="N", help="measured requests to send")
    s.add_argument(
        "--duration",
        "-d",
        type=_positive(float),
        metavar="S",
        help="seconds of measured phase to send requests for",
    )
    s.add_argument(
        "--warmup",
        type=_warmup,
        default=(0, 0.0),
        metavar="N|Ss",
        help="warm-up excluded from stats: N requests, or S seconds as '5s'",
    )
    s.add_argument(
        "--timeout",
        type=_positive(float),
        default=60.0,
        metavar="S",
        help="per-request limit, send to end of stream (default 60)",
    )
    s.add_argument(
        "--max-time",
        type=_positive(float),
        metavar="S",
        help="hard overall limit; requests still running are aborted "
        "(default: warm-up + duration + timeout + 10 s, or 3600 s with --requests only)",
    )

    o = p.add_argument_group("SLOs and output")
    o.add_argument("--slo-ttft-ms", type=_positive(float), metavar="MS", help="goodput SLO on TTFT")
    o.add_argument(
        "--slo-itl-ms", type=_positive(float), metavar="MS", help="goodput SLO on mean ITL per request"
    )
    o.add_argument("--slo-e2e-ms", type=_positive(float), metavar="MS", help="goodput SLO on E2E")
    o.add_argument(
        "--json", type=Path, metavar="FILE", help="write the summary and every request record as JSON"
    )
    o.add_argument("--report", type=Path, metavar="FILE.html", help="write a self-contained HTML report")
    o.add_argument(
        "--quiet", "-q", action="store_true", help="no live progress (also off when stdout is not a TTY)"
    )
    o.add_argument("--fail-on-error", action="store_true", help="exit 1 if any measured request failed")


def register(subparsers: Any) -> None:
    """Add `loadtest` to an argparse subparsers object; its `func(args)` returns the exit code."""
    p = subparsers.add_parser(
        "loadtest",
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run_cli)


def _ms(value: float | None) -> float | None:
    return None if value is None else value / 1000.0


def config_from_args(args: argparse.Namespace) -> LoadConfig:
    if args.prompts_file is not None:
        prompts = load_prompts(args.prompts_file)
    else:
        prompts = [args.prompt if args.prompt is not None else "Hello"]
    warmup_requests, warmup_s = args.warmup
    config = LoadConfig(
        url=args.url,
        target=args.target,
        agent=args.agent,
        prompts=prompts,
        concurrency=args.concurrency,
        rate=args.rate,
        arrival=args.arrival,
        seed=args.seed,
        requests=args.requests,
        duration_s=args.duration,
        warmup_requests=warmup_requests,
        warmup_s=warmup_s,
        timeout_s=args.timeout,
        max_time_s=args.max_time,
        max_in_flight=args.max_in_flight,
        ramp_up_s=args.ramp_up,
        ws_streams_per_socket=args.ws_streams_per_socket,
        headers=dict(args.header),
        slo_ttft_s=_ms(args.slo_ttft_ms),
        slo_itl_s=_ms(args.slo_itl_ms),
        slo_e2e_s=_ms(args.slo_e2e_ms),
    )
    config.validate()
    return config


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


async def _run_with_progress(config: LoadConfig, console: Console, show: bool) -> LoadResult:
    live = LiveStats()
    if not show:
        return await run_load(config, live)
    total = config.requests + config.warmup_requests if config.requests is not None else None
    async with live_progress(live, console, total):
        return await run_load(config, live)


def run_cli(args: argparse.Namespace) -> int:
    console = Console()
    err = Console(stderr=True)
    try:
        config = config_from_args(args)
    except (ValueError, OSError) as exc:
        err.print(f"[red]agent-proxy loadtest: error:[/red] {exc}")
        return 2
    show = not args.quiet and sys.stdout.isatty()
    try:
        result = _run(_run_with_progress(config, console, show))
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    print_summary(result, console)
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2))
        console.print(f"JSON written to {args.json}")
    if args.report is not None:
        write_report(result, args.report)
        console.print(f"HTML report written to {args.report}")
    return 1 if args.fail_on_error and result.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m proxy.loadtest ...`: the same flags as `agent-proxy loadtest`."""
    parser = argparse.ArgumentParser(
        prog="python -m proxy.loadtest",
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run_cli(parser.parse_args(argv))
