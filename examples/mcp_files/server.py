"""A small MCP server with read-only project-file tools, rooted at the folder in `$FILES_ROOT`.

Run over stdio (what an agent's `command` starts):  python examples/mcp_files/server.py
or over streamable HTTP:                             python examples/mcp_files/server.py --http 8765
An optional bearer token (`$FILES_MCP_TOKEN`) is required on HTTP when set.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fastmcp import FastMCP
from fastmcp.server.dependencies import get_http_headers

MAX_BYTES = 64 * 1024
MAX_RESULTS = 200

mcp = FastMCP("files")


def _root() -> Path:
    return Path(os.environ.get("FILES_ROOT", ".")).resolve()


def _check_auth() -> None:
    token = os.environ.get("FILES_MCP_TOKEN")
    if not token:
        return
    headers = get_http_headers(include_all=True)
    if headers and headers.get("authorization") != f"Bearer {token}":
        raise PermissionError("missing or wrong bearer token")


def _resolve(path: str) -> Path:
    """`path` inside the root; anything that escapes it (.., symlinks, absolute paths) is refused."""
    root = _root()
    target = (root / path).resolve()
    if target != root and root not in target.parents:
        raise ValueError(f"{path!r} is outside the project root")
    return target


@mcp.tool
def list_files(path: str = ".") -> list[str]:
    """List the files and folders in a folder of the project (folders end with '/')."""
    _check_auth()
    folder = _resolve(path)
    if not folder.is_dir():
        raise ValueError(f"{path!r} is not a folder")
    root = _root()
    entries = sorted(folder.iterdir())[:MAX_RESULTS]
    return [str(e.relative_to(root)) + ("/" if e.is_dir() else "") for e in entries]


@mcp.tool
def read_file(path: str) -> str:
    """Read a text file of the project (at most 64 KiB)."""
    _check_auth()
    file = _resolve(path)
    if not file.is_file():
        raise ValueError(f"{path!r} is not a file")
    return file.read_bytes()[:MAX_BYTES].decode("utf-8", errors="replace")


@mcp.tool
def search(text: str, path: str = ".") -> list[str]:
    """Find lines containing `text` in the project's files, as 'file:line: content'."""
    _check_auth()
    root, hits = _root(), []
    for file in sorted(_resolve(path).rglob("*")):
        if not file.is_file() or file.stat().st_size > MAX_BYTES:
            continue
        for number, line in enumerate(file.read_text("utf-8", errors="replace").splitlines(), 1):
            if text in line:
                hits.append(f"{file.relative_to(root)}:{number}: {line.strip()}")
                if len(hits) >= MAX_RESULTS:
                    return hits
    return hits


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on 127.0.0.1:PORT")
    args = parser.parse_args()
    if args.http:
        mcp.run(transport="http", host="127.0.0.1", port=args.http, show_banner=False)
    else:
        mcp.run(show_banner=False)


if __name__ == "__main__":
    main()
