"""Claude Code (`claude -p`, pinned in tests/js/) through the proxy's Messages door, against the mock
upstream: it answers a prompt, runs a Bash tool call the model makes and gets the answer to the
result, and recovers from a stream cut mid-answer the way it does against Anthropic (by asking
again without streaming). It runs headless with a home of its own and no telemetry; its base URL is
the proxy on 127.0.0.1, so it never reaches the network.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import orjson

from proxy.mock_upstream import MockBehaviour, MockServer, expected_text
from tests.conftest import Proxy, ProxyFactory, settings_for
from tests.js_clients import claude_code

TIMEOUT_S = 120


async def claude(proxy: Proxy, home: Path, prompt: str, *args: str) -> dict[str, Any]:
    """`claude -p prompt --output-format json`: its result object."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": proxy.url,
        "ANTHROPIC_API_KEY": "sk-ant-test",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    process = await asyncio.create_subprocess_exec(
        str(claude_code()),
        "-p",
        prompt,
        "--output-format",
        "json",
        *args,
        cwd=home,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(TIMEOUT_S):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, (
        f"claude failed ({process.returncode}):\n{stdout.decode()}\n{stderr.decode()}"
    )
    result: dict[str, Any] = orjson.loads(stdout)
    return result


async def test_claude_code_answers_a_prompt_through_an_agent_of_claude_aliases(
    mock: MockServer, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    agent = {"model": "m?chunks=4", "aliases": ["claude-*"]}
    proxy = await make_proxy(settings_for(mock, {"coder": agent}))
    result = await claude(proxy, tmp_path, "say hi")
    assert result["is_error"] is False and result["stop_reason"] == "end_turn"
    assert result["result"] == expected_text(MockBehaviour(chunks=4))
    sent = mock.stats.last_request_bodies[-1]
    assert any(tool["function"]["name"] == "Bash" for tool in sent["tools"])  # its own tools
    assert "Claude" in sent["messages"][0]["content"]  # its own system prompt
    await proxy.engine.wait_idle(2)


async def test_claude_code_runs_the_bash_call_of_the_model_and_gets_the_answer_to_its_result(
    mock: MockServer, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    agent = {"model": 'm?tool=Bash&tool_args={"command":"echo from-bash"}', "aliases": ["claude-*"]}
    proxy = await make_proxy(settings_for(mock, {"coder": agent}))
    result = await claude(proxy, tmp_path, "run echo", "--allowedTools", "Bash")
    assert result["is_error"] is False and result["num_turns"] == 2
    assert result["result"].endswith("(tool result: from-bash)")
    tool_message = mock.stats.last_request_bodies[-1]["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["content"] == "from-bash"  # it ran the command
    await proxy.engine.wait_idle(2)


async def test_claude_code_asks_again_without_streaming_when_the_stream_is_cut_after_the_first_token(
    mock: MockServer, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    agent = {"model": "m?chunks=4&fault=drop&after=1&fault_times=1", "aliases": ["claude-*"]}
    proxy = await make_proxy(settings_for(mock, {"coder": agent}))
    result = await claude(proxy, tmp_path, "say hi")
    assert result["is_error"] is False
    assert result["result"] == expected_text(MockBehaviour(chunks=4))
    assert mock.stats.total.requests == 2  # the cut stream, then the same request (not streamed)
    await proxy.engine.wait_idle(2)
