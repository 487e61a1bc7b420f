"""Tools from MCP servers (the example project-files server), over stdio and streamable HTTP."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart

from proxy.config import Settings
from proxy.mock_upstream import MockServer
from tests.conftest import ProxyFactory
from tests.support import assert_stream_invariants, free_port, post_stream

SERVER = Path(__file__).parent.parent / "examples" / "mcp_files" / "server.py"
LIST = 'files?tool=list_files&tool_args={"path":"."}'


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "README.md").write_text("hello\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("print('hi')\n")
    return tmp_path


def stdio_settings(mock: MockServer, project: Path, model: str, **agent: Any) -> Settings:
    return Settings(
        upstreams={"mock": {"base_url": mock.base_url}},
        mcp_servers={
            "files": {"command": sys.executable, "args": [str(SERVER)], "env": {"FILES_ROOT": str(project)}}
        },
        agents={"a": {"model": f"mock:{model}", "mcp_servers": ["files"], **agent}},
    )


async def test_tool_call_then_result_then_text_over_stdio_and_stored_once(
    mock: MockServer, project: Path, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(stdio_settings(mock, project, LIST))
    result = await post_stream(session, proxy.url, "a", "what is here?")
    types = result.types()
    assert types[:3] == ["start", "tool_call", "tool_result"]
    assert set(types[3:-1]) == {"delta"}
    call, answer = result.of("tool_call")[0], result.of("tool_result")[0]
    assert call["name"] == "list_files"
    assert call["args"] == {"path": "."}
    assert answer["tool_call_id"] == call["tool_call_id"]
    assert answer["outcome"] == "success"
    assert "README.md" in answer["content"] and "src/" in answer["content"]
    assert "README.md" in result.end["text"]  # the mock quotes the tool result in its answer
    assert_stream_invariants([e.data for e in result.events])
    history = await proxy.engine.store.get(result.end["conversation_id"])
    assert history is not None
    responses = [m for m in history if isinstance(m, ModelResponse)]
    assert [type(p) for r in responses for p in r.parts] == [ToolCallPart, TextPart]


async def test_failing_tool_is_reported_and_the_stream_goes_on(
    mock: MockServer, project: Path, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    model = 'files?tool=read_file&tool_args={"path":"../../etc/passwd"}'
    proxy = await make_proxy(stdio_settings(mock, project, model))
    result = await post_stream(session, proxy.url, "a", "read it")
    answer = result.of("tool_result")[0]
    assert answer["outcome"] == "failed"
    assert "outside the project root" in answer["content"]
    assert result.end["finish_reason"] == "stop"


async def test_tool_calls_are_bounded_by_config(
    mock: MockServer, project: Path, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(stdio_settings(mock, project, f"{LIST}&tool_calls=3", max_tool_calls=2))
    result = await post_stream(session, proxy.url, "a", "loop")
    assert len(result.of("tool_call")) == 2
    assert result.of("error")[0]["code"] == "usage_limit_exceeded"
    assert result.end["finish_reason"] == "error"


@pytest.fixture
async def http_server(project: Path) -> AsyncIterator[str]:
    port = free_port()
    env = {"FILES_ROOT": str(project), "FILES_MCP_TOKEN": "s3cret", "PATH": ""}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SERVER),
        "--http",
        str(port),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        async with asyncio.timeout(30), aiohttp.ClientSession() as s:
            while True:
                try:
                    async with s.get(url) as resp:
                        if resp.status < 500:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)  # the server process is still starting
        yield url
    finally:
        process.kill()
        await process.wait()


async def test_streamable_http_server_with_header_from_env_over_websocket(
    mock: MockServer,
    http_server: str,
    make_proxy: ProxyFactory,
    session: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FILES_AUTH", "Bearer s3cret")
    settings = Settings(
        upstreams={"mock": {"base_url": mock.base_url}},
        mcp_servers={"files": {"url": http_server, "headers_env": {"Authorization": "FILES_AUTH"}}},
        agents={"a": {"model": f"mock:{LIST}", "mcp_servers": ["files"]}},
    )
    proxy = await make_proxy(settings)
    frames: list[dict[str, Any]] = []
    async with session.ws_connect(f"{proxy.url}/v1/ws") as ws:
        await ws.send_str('{"type": "prompt", "request_id": "r", "agent": "a", "prompt": "what is here?"}')
        while not frames or frames[-1]["type"] != "end":
            frames.append(orjson.loads((await ws.receive(timeout=20)).data))
    types = [f["type"] for f in frames]
    assert types[:3] == ["start", "tool_call", "tool_result"]
    assert frames[2]["outcome"] == "success"
    assert "README.md" in frames[2]["content"]
    assert frames[-1]["finish_reason"] == "stop"
    assert_stream_invariants(frames)
