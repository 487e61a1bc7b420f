"""Run the real JavaScript clients of `tests/js/` (Vercel AI SDK, AG-UI) with Node against a live proxy.

`make test` installs them (`npm ci` in `tests/js/`). Without Node or the installed packages a test is
skipped with the reason, except under `CI=true`, where that is a failure: CI must not silently lose
the checks that only a real client makes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

JS_DIR = Path(__file__).parent / "js"


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: required)")
    pytest.skip(reason)


def node() -> str:
    path = shutil.which("node")
    if path is None:
        _missing("node is not installed (Debian: apt-get install nodejs npm)")
    if not (JS_DIR / "node_modules").is_dir():
        _missing(f"the JavaScript clients are not installed: run `npm ci` in {JS_DIR}")
    assert path is not None
    return path


async def run_node(script: str, args: dict[str, Any], timeout: float = 60) -> Any:
    """Run `tests/js/<script>` with `args` as its JSON argument; return the JSON it prints."""
    process = await asyncio.create_subprocess_exec(
        node(),
        str(JS_DIR / script),
        orjson.dumps(args).decode(),
        cwd=JS_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, f"{script} failed:\n{stderr.decode()}"
    return orjson.loads(stdout)


def claude_code() -> Path:
    """The pinned Claude Code binary of `tests/js/` (its npm package ships it)."""
    node()
    path = JS_DIR / "node_modules" / ".bin" / "claude"
    if not path.exists():
        _missing(f"Claude Code is not installed: run `npm ci` in {JS_DIR}")
    return path
