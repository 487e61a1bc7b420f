"""The README: its generated reference sections match the code, and every shell and Python example
runs as written against a live demo (`agent-proxy serve`, as `make run` starts it)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from proxy.config_reference import render
from tests.support import free_port

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(
    r"(?:<!-- not-run: (?P<reason>[^>]*?) -->\n)?```(?P<lang>sh|python)\n(?P<code>.*?)```", re.S
)
DEMO_PORT = "8080"
OTHER_PORTS = ("8081", "9100")
"""Ports the examples start servers of their own on; the test moves them to free ones."""


@dataclass(frozen=True)
class Example:
    line: int
    lang: str
    code: str
    not_run: str | None


def examples() -> list[Example]:
    text = README.read_text()
    return [
        Example(text.count("\n", 0, m.start("code")) + 1, m["lang"], m["code"], m["reason"])
        for m in BLOCK.finditer(text)
    ]


RUNNABLE = [e for e in examples() if e.not_run is None]


def test_readme_reference_sections_are_current() -> None:
    text = README.read_text()
    assert render(text) == text, "run: .venv/bin/python -m proxy.config_reference --readme README.md"


def test_readme_starts_with_the_two_commands() -> None:
    first_screen = README.read_text()[:1500]
    assert "make run" in first_screen
    assert "make test" in first_screen


def test_examples_that_do_not_run_say_why() -> None:
    skipped = [e for e in examples() if e.not_run is not None]
    assert all(e.not_run and e.not_run.strip() for e in skipped)
    assert len(RUNNABLE) >= 7, [e.line for e in RUNNABLE]


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


@pytest.mark.parametrize("example", RUNNABLE, ids=[f"{e.lang}-line{e.line}" for e in RUNNABLE])
def test_example_runs_as_written(example: Example, demo: str) -> None:
    code = example.code.replace(DEMO_PORT, demo)
    for port in OTHER_PORTS:
        code = code.replace(port, str(free_port()))
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
    assert process.returncode == 0, f"README line {example.line}:\n{stdout}\n{stderr}"
    assert stdout.strip(), f"README line {example.line} printed nothing:\n{stderr}"
    assert '"error"' not in stdout, f"README line {example.line}:\n{stdout}"


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
