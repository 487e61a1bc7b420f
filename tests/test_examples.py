"""Every config in examples/ is one `agent-proxy check-config` accepts, without its secrets: the unset
ones are warnings that name their variable, never a failure, so the files stay valid as the settings
change and a user can check one before setting any key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
CONFIGS = sorted((ROOT / "examples").rglob("*.toml"))
SECRET = re.compile(r'^(?:api_key_env|redis_url_env) = "(\w+)"', re.M)


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    """`check-config` in an environment without secrets or `AGENT_PROXY_…` overrides, as in a fresh shell."""
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    return subprocess.run(
        [sys.executable, "-m", "proxy.cli", "check-config", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_examples_hold_configs_for_real_upstreams() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in CONFIGS}
    assert {f"examples/{name}.toml" for name in ("openai", "vllm", "ollama", "redis")} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.relative_to(ROOT).as_posix() for p in CONFIGS])
def test_example_config_passes_check_config_without_its_secrets(path: Path) -> None:
    result = check_config(path)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
    warnings = result.stderr.splitlines()
    assert all(": warning: " in line for line in warnings), result.stderr
    for variable in SECRET.findall(path.read_text()):
        assert any(f"{variable} is not set" in line for line in warnings), (variable, result.stderr)
