"""`agent-proxy keys create --name NAME`: a new key, shown once, and the config lines with its hash."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pydantic import ValidationError

from proxy.auth.keys import hash_key, new_key
from proxy.auth.settings import KeySettings


def run_create(args: argparse.Namespace) -> int:
    key = new_key()
    try:
        entry = KeySettings(name=args.name, sha256=hash_key(key), agents=args.agents)
    except ValidationError as exc:
        for error in exc.errors():
            print(f"invalid --{error['loc'][0]}: {error['msg']}", file=sys.stderr)
        return 2
    lines = [
        f"Key for {entry.name}, shown this once (the proxy keeps only its SHA-256):",
        "",
        f"    {key}",
        "",
        "Add these lines to the proxy's config (in a keys_file, the table is named [[keys]]):",
        "",
        "[[auth.keys]]",
        f'name = "{entry.name}"',
        f'sha256 = "{entry.sha256}"',
    ]
    if entry.agents is not None:
        lines.append("agents = [" + ", ".join(f'"{a}"' for a in entry.agents) + "]")
    lines.append(
        "# limits = { requests_per_minute = 600, tokens_per_minute = 200000, concurrent_streams = 50 }"
    )
    print("\n".join(lines))
    return 0


def register(sub: Any) -> None:
    keys = sub.add_parser("keys", help="manage API keys")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="make a new key; prints it once, and the config lines")
    create.add_argument("--name", required=True, help="what logs and metrics show for this key")
    create.add_argument(
        "--agent", dest="agents", action="append", help="an agent it may use (repeat; default: all)"
    )
    create.set_defaults(func=run_create)
