"""`python -m proxy.mock_upstream [flags]`: the `mock-upstream` subcommand without the rest of the CLI."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from proxy.mock_upstream.cli import register


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proxy.mock_upstream", add_help=False)
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["mock-upstream", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
