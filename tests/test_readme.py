"""The README and docs/: their generated reference sections match the code, every shell and Python
example runs as written against a live demo (`agent-proxy serve`, as `make run` starts it), and every
config marked `<!-- check-config -->` passes `agent-proxy check-config` without its secrets."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from proxy.config_reference import render
from tests.redis_server import RedisServer
from tests.support import free_port
from tests.test_examples import SECRET, check_config

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(
    r"(?:<!-- not-run: (?P<reason>[^>]*?) -->\n[ \t]*)?```(?P<lang>sh|python)\n(?P<code>.*?)```", re.S
)
CONFIG_BLOCK = re.compile(r"<!-- check-config -->\n```toml\n(?P<code>.*?)```", re.S)
LINK = re.compile(r"\]\((?!https?:|#)(?P<target>[^)#\s]+)[^)]*\)")
DEMO_PORT = "8080"
OTHER_PORTS = ("8081", "9100")
"""Ports the examples start servers of their own on; the test moves them to free ones."""
REDIS_PORT = "6379"
"""The Redis an example expects; the test gives it the session's own."""


@dataclass(frozen=True)
class Example:
    path: Path
    line: int
    lang: str
    code: str
    not_run: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(pattern: re.Pattern[str]) -> Iterator[tuple[Path, int, re.Match[str]]]:
    for path in DOCS:
        text = path.read_text()
        for m in pattern.finditer(text):
            yield path, text.count("\n", 0, m.start("code")) + 1, m


def examples() -> list[Example]:
    return [Example(path, line, m["lang"], m["code"], m["reason"]) for path, line, m in blocks(BLOCK)]


RUNNABLE = [e for e in examples() if e.not_run is None]
CONFIGS = [(f"{path.relative_to(ROOT)}:{line}", m["code"]) for path, line, m in blocks(CONFIG_BLOCK)]


@pytest.mark.parametrize("path", DOCS, ids=[p.relative_to(ROOT).as_posix() for p in DOCS])
def test_reference_sections_are_current(path: Path) -> None:
    text = path.read_text()
    assert render(text) == text, f"run: .venv/bin/python -m proxy.config_reference {path.relative_to(ROOT)}"


@pytest.mark.parametrize("path", DOCS, ids=[p.relative_to(ROOT).as_posix() for p in DOCS])
def test_relative_links_point_at_files_of_the_repository(path: Path) -> None:
    targets = [m["target"] for m in LINK.finditer(path.read_text())]
    assert [t for t in targets if not (path.parent / t).exists()] == []


def test_readme_starts_with_the_two_commands() -> None:
    first_screen = README.read_text()[:1500]
    assert "make run" in first_screen
    assert "make test" in first_screen


def test_examples_that_do_not_run_say_why() -> None:
    skipped = [e for e in examples() if e.not_run is not None]
    assert all(e.not_run and e.not_run.strip() for e in skipped)
    assert len(RUNNABLE) >= 7, [e.where for e in RUNNABLE]


def test_readme_has_a_config_for_real_models_that_is_checked() -> None:
    assert any(where.startswith("README.md:") and SECRET.search(code) for where, code in CONFIGS)


@pytest.mark.parametrize(("where", "code"), CONFIGS, ids=[where for where, _ in CONFIGS])
def test_config_passes_check_config_without_its_secrets(where: str, code: str, tmp_path: Path) -> None:
    config = tmp_path / "agent-proxy.toml"
    config.write_text(code)
    result = check_config(config)
    assert result.returncode == 0, f"{where}:\n{result.stderr}"
    for variable in SECRET.findall(code):
        assert f"{variable} is not set" in result.stderr, (where, result.stderr)


@pytest.fixture(scope="module")
def demo() -> Iterator[str]:
    """The built-in demo on a free port; yields the port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", "serve", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "AGENT_PROXY_CONFIG": ""},
    )
    assert process.stderr is not None
    try:
        for line in process.stderr:
            if match := re.search(r"listening on \('127\.0\.0\.1', (\d+)\)", line):
                yield match.group(1)
                break
        else:
            pytest.fail("the demo exited before listening")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_sse_sample_shows_the_ids_and_events_the_demo_sends(demo: str) -> None:
    """The output under the first curl is what a user compares theirs with: its `id:` and `event:`
    lines are lines of a real stream, with only the stream id elided."""
    sample = re.search(r"demo/stream \\\n.*?```\n```\n(?P<out>.*?)```", README.read_text(), re.S)
    assert sample is not None
    shown = [line for line in sample["out"].splitlines() if line.startswith(("id:", "event:"))]
    request = urllib.request.Request(
        f"http://127.0.0.1:{demo}/v1/agents/demo/stream",
        data=b'{"prompt":"hello"}',
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        live = re.sub(r"str_[0-9a-f]+", "str_…", response.read().decode()).splitlines()
    assert shown and all(line in live for line in shown), (shown, live)


@pytest.mark.parametrize("example", RUNNABLE, ids=[e.where for e in RUNNABLE])
def test_example_runs_as_written(example: Example, demo: str, request: pytest.FixtureRequest) -> None:
    code = example.code.replace(DEMO_PORT, demo)
    for port in OTHER_PORTS:
        code = code.replace(port, str(free_port()))
    if REDIS_PORT in code:
        redis: RedisServer = request.getfixturevalue("redis_server")
        code = code.replace(REDIS_PORT, str(redis.port))
    shell = example.lang == "sh"
    command = ["bash", "-euo", "pipefail", "-c", code] if shell else [sys.executable, "-c", code]
    # Its own session, so that servers an example starts in the background go with it.
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=120)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert process.returncode == 0, f"{example.where}:\n{stdout}\n{stderr}"
    assert stdout.strip(), f"{example.where} printed nothing:\n{stderr}"
    assert '"error"' not in stdout, f"{example.where}:\n{stdout}"


def test_websocket_example_ends_when_a_prompt_is_refused(demo: str) -> None:
    """A refused prompt gets one `error` frame and no `end`: the example must not wait for one."""
    [example] = [e for e in RUNNABLE if "ws_connect" in e.code]
    refused = '"agent": "no-such-agent", "prompt": "two"'
    code = example.code.replace(DEMO_PORT, demo).replace('"agent": "demo", "prompt": "two"', refused)
    assert refused in code
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    assert "r2 error" in result.stdout
    assert "r1 end" in result.stdout
