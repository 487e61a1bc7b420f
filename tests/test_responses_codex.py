"""Codex CLI (`@openai/codex`, pinned in tests/js) through the Responses door: `codex exec` with a
`model_providers` entry for the proxy in a temporary `CODEX_HOME`, answering a prompt and running
the `exec_command` the mock upstream is scripted to call.

Codex only ever talks to 127.0.0.1 here: its update check, analytics and OpenTelemetry export are off
in its config, and its environment sends anything else to a closed local proxy port."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from proxy.mock_upstream import MockServer
from tests.conftest import ProxyFactory, settings_for
from tests.js_clients import JS_DIR, node
from tests.test_openai import upstream_body

CODEX = JS_DIR / "node_modules" / ".bin" / "codex"
NOWHERE = "http://127.0.0.1:9"
"""The discard port: a connection to anything but the proxy is refused at once, never sent out."""
EXEC_ARGS = '{"cmd":"echo hi > out.txt"}'


def codex_home(tmp_path: Path, base_url: str, model: str, stream_retries: int = 0) -> Path:
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'model = "{model}"\n'
        'model_provider = "proxy"\n'
        "check_for_update_on_startup = false\n"
        "[model_providers.proxy]\n"
        'name = "agent-proxy"\n'
        f'base_url = "{base_url}"\n'
        'wire_api = "responses"\n'
        'env_key = "AGENT_PROXY_KEY"\n'
        "request_max_retries = 0\n"
        f"stream_max_retries = {stream_retries}\n"
        "[analytics]\nenabled = false\n"
        '[otel]\nexporter = "none"\n'
    )
    return home


async def codex_exec(
    home: Path, workdir: Path, prompt: str, timeout: float = 90, succeeds: bool = True
) -> list[dict[str, Any]]:
    """`codex exec --json PROMPT` in `workdir`; the JSONL events it printed."""
    node()  # skips (or fails under CI) when the npm clients are not installed
    env = {
        **os.environ,
        "CODEX_HOME": str(home),
        "AGENT_PROXY_KEY": "unused",
        "HTTPS_PROXY": NOWHERE,
        "HTTP_PROXY": NOWHERE,
        "NO_PROXY": "127.0.0.1",
    }
    process = await asyncio.create_subprocess_exec(
        str(CODEX),
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--ephemeral",
        "--dangerously-bypass-approvals-and-sandbox",
        "-C",
        str(workdir),
        prompt,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
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
    assert (process.returncode == 0) is succeeds, f"codex exec:\n{stderr.decode()}\n{stdout.decode()}"
    return [orjson.loads(line) for line in stdout.splitlines() if line.startswith(b"{")]


def items(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["item"] for e in events if e["type"] == "item.completed" and e["item"]["type"] == kind]


async def test_codex_exec_answers_a_prompt_through_the_proxy(
    mock: MockServer, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    agents = {"coder": {"model": "m?chunks=3", "aliases": ["gpt-5*"]}}
    proxy = await make_proxy(settings_for(mock, agents))
    home = codex_home(tmp_path, f"{proxy.url}/v1", "gpt-5-codex")
    events = await codex_exec(home, tmp_path, "say hi")
    [answer] = items(events, "agent_message")
    assert answer["text"] == "tok0 tok1 tok2"
    assert events[-1]["type"] == "turn.completed" and events[-1]["usage"]["output_tokens"] == 3
    body = upstream_body(mock)
    assert body["messages"][0]["role"] == "system"  # Codex's developer messages: its system prompt
    assert body["messages"][-1] == {"role": "user", "content": "say hi"}
    assert "exec_command" in {t["function"]["name"] for t in body["tools"]}
    await proxy.engine.wait_idle(2)


async def test_codex_exec_runs_the_exec_command_the_model_calls_and_answers_with_its_output(
    mock: MockServer, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    model = f"m?tool=exec_command&tool_args={quote(EXEC_ARGS)}&chunks=2"
    proxy = await make_proxy(settings_for(mock, {"coder": {"model": model, "aliases": ["gpt-5*"]}}))
    workdir = tmp_path / "work"
    workdir.mkdir()
    home = codex_home(tmp_path, f"{proxy.url}/v1", "gpt-5-codex")
    events = await codex_exec(home, workdir, "write hi to out.txt")
    [command] = items(events, "command_execution")
    assert "echo hi > out.txt" in command["command"] and command["exit_code"] == 0
    assert (workdir / "out.txt").read_text() == "hi\n"
    [answer] = items(events, "agent_message")
    assert answer["text"].startswith("tok0 tok1 (tool result: ")
    assert "exited with code 0" in answer["text"]
    assert mock.stats.total.requests == 2
    await proxy.engine.wait_idle(2)


async def test_codex_stops_at_once_on_a_context_too_long_for_the_model(
    mock: MockServer, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    proxy = await make_proxy(
        settings_for(mock, {"coder": {"model": "m?fault=context_length", "aliases": ["gpt-5*"]}})
    )
    home = codex_home(tmp_path, f"{proxy.url}/v1", "gpt-5-codex")
    events = await codex_exec(home, tmp_path, "hi", succeeds=False)
    [failed] = [e for e in events if e["type"] == "turn.failed"]
    assert "context window" in failed["error"]["message"]
    assert mock.stats.total.requests == 1


async def test_codex_retries_a_response_that_failed_mid_stream_and_gets_the_whole_answer(
    mock: MockServer, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    model = "m?chunks=4&fault=drop&after=2&fault_times=1"
    proxy = await make_proxy(
        settings_for(mock, {"coder": {"model": model, "aliases": ["gpt-5*"]}}, retry={"max_attempts": 1})
    )
    home = codex_home(tmp_path, f"{proxy.url}/v1", "gpt-5-codex", stream_retries=1)
    events = await codex_exec(home, tmp_path, "hi")
    [answer] = items(events, "agent_message")
    assert answer["text"] == "tok0 tok1 tok2 tok3"
    assert mock.stats.total.requests == 2
