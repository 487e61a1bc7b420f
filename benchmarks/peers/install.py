"""Installing the peers into a scratch directory, once: Portkey's gateway from npm, LiteLLM from PyPI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PORTKEY_VERSION = "1.15.2"
# As published, 1.15.2's ranges resolve to @hono/node-server and hono releases with which it answers
# 500 to every stream; these are the releases it streams with.
PORTKEY_PINS = {"@hono/node-server": "1.13.5", "@hono/node-ws": "1.2.0", "hono": "4.9.7"}
LITELLM_VERSION = "1.108.7"
INSTALL_TIMEOUT_S = 1200


def _run(argv: list[str], cwd: Path | None = None) -> None:
    print("+", " ".join(argv), flush=True)
    subprocess.run(argv, cwd=cwd, check=True, timeout=INSTALL_TIMEOUT_S)


def _installed(stamp: Path, what: str) -> bool:
    """Whether `what` was installed completely: the stamp is written last, after the install."""
    return stamp.exists() and stamp.read_text() == what


def install_portkey(scratch: Path) -> Path:
    """Portkey's gateway with its pins in `scratch/portkey`; returns its start script."""
    directory = scratch / "portkey"
    manifest = json.dumps(
        {
            "name": "bench-peers-portkey",
            "private": True,
            "dependencies": {"@portkey-ai/gateway": PORTKEY_VERSION},
            "overrides": PORTKEY_PINS,
        },
        indent=2,
    )
    stamp = directory / ".installed"
    if not _installed(stamp, manifest):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "package.json").write_text(manifest)
        # --ignore-scripts: its only install script is patch-package, and the package ships no patches.
        _run(["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=directory)
        stamp.write_text(manifest)
    return directory / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"


def install_litellm(scratch: Path) -> Path:
    """LiteLLM's proxy in its own virtualenv, `scratch/litellm`; returns its `litellm` command."""
    directory = scratch / "litellm"
    spec = f"litellm[proxy]=={LITELLM_VERSION}"
    stamp = directory / ".installed"
    if not _installed(stamp, spec):
        _run([sys.executable, "-m", "venv", "--clear", str(directory)])
        _run([str(directory / "bin" / "pip"), "install", "--disable-pip-version-check", "-q", spec])
        stamp.write_text(spec)
    return directory / "bin" / "litellm"


def portkey_versions(scratch: Path) -> str:
    """The gateway's and its pinned packages' installed versions, as read from node_modules."""
    modules = scratch / "portkey" / "node_modules"
    names = ["@portkey-ai/gateway", *PORTKEY_PINS]
    return ", ".join(
        f"{name} {json.loads((modules / name / 'package.json').read_text())['version']}" for name in names
    )


def command_version(*argv: str) -> str:
    """What a `--version`-like command prints, stripped."""
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout.strip()
