"""`agent-proxy serve | mock-upstream | loadtest | check-config | keys`."""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    from proxy import serve
    from proxy.auth import cli as keys_cli
    from proxy.loadtest import cli as loadtest_cli
    from proxy.mock_upstream import cli as mock_cli

    parser = argparse.ArgumentParser(prog="agent-proxy", description=__doc__)
    parser.add_argument(
        "--version", action="version", version=f"agent-proxy {importlib.metadata.version('agent-proxy')}"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve.register(sub)
    mock_cli.register(sub)
    loadtest_cli.register(sub)
    keys_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
