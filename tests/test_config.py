"""Configuration: TOML + environment, and errors that name the file, the key and the problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from proxy.config import ConfigError, load_settings
from proxy.mock_upstream import MockServer
from tests.conftest import ProxyFactory
from tests.support import post_stream

GOOD = """
[server]
port = 9001
heartbeat_interval_s = 5

[retry]
max_attempts = 4

[upstreams.local]
base_url = "{base_url}"
api_key_env = "TEST_LOCAL_KEY"

[agents.assistant]
model = "local:m?chunks=3"
instructions = "Be brief."
retry = {{ max_attempts = 2 }}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "proxy.toml"
    path.write_text(text)
    return path


def test_file_values_and_per_agent_overrides(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD.format(base_url="http://127.0.0.1:9/v1")))
    assert settings.server.port == 9001
    assert settings.retry.max_attempts == 4
    assert settings.retry_for("assistant").max_attempts == 2
    assert settings.agents["assistant"].instructions == "Be brief."
    assert not settings.demo


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_PROXY_SERVER__PORT", "9555")
    monkeypatch.setenv("AGENT_PROXY_RETRY__MID_STREAM", "fail")
    settings = load_settings(write(tmp_path, GOOD.format(base_url="http://127.0.0.1:9/v1")))
    assert settings.server.port == 9555
    assert settings.retry.mid_stream == "fail"


def test_config_file_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_PROXY_CONFIG", str(write(tmp_path, GOOD.format(base_url="http://h/v1"))))
    assert load_settings().agents["assistant"].model == "local:m?chunks=3"


def test_no_config_is_the_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENT_PROXY_CONFIG", raising=False)
    settings = load_settings()
    assert settings.demo
    assert list(settings.agents) == ["demo", "demo-drop", "demo-429", "demo-stall"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[server]\nport = 'x'\n[agents.a]\nmodel='m'", "server.port: Input should be a valid integer"),
        ("[server]\nprot = 1\n[agents.a]\nmodel='m'", "server.prot: Extra inputs are not permitted"),
        (
            "[retry]\nmid_stream = 'maybe'\n[agents.a]\nmodel='m'",
            "retry.mid_stream: Input should be 'restart' or 'fail'",
        ),
        (
            "[upstreams.u]\nbase_url = 'ftp://x'\n[agents.a]\nmodel='u:m'",
            "upstreams.u.base_url: must start with http",
        ),
        (
            "[agents.a]\nmodel='m'\nretry = { max_attempts = 0 }",
            "agents.a.retry.max_attempts: Input should be greater than or equal to 1",
        ),
        ("[server]\nport = 1\n", "agents: at least one [agents.NAME] table is required"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_errors_name_file_key_and_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert f"{path}: {expected}" in str(info.value)


def test_check_config_cli_reports_and_serve_refuses(tmp_path: Path) -> None:
    bad = write(tmp_path, "[server]\nport = 'x'\n[agents.a]\nmodel = 'm'\n")
    check = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "check-config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 2
    assert f"{bad}: server.port: Input should be a valid integer" in check.stderr
    serve = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "serve", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert serve.returncode == 2
    assert f"{bad}: server.port: Input should be a valid integer" in serve.stderr


def test_check_config_cli_accepts_a_good_file(tmp_path: Path) -> None:
    good = write(tmp_path, GOOD.format(base_url="http://127.0.0.1:9/v1"))
    check = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "check-config", str(good)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    assert "OK (1 agents: assistant)" in check.stdout


async def test_upstream_key_comes_from_the_named_env_var(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mock: MockServer,
    make_proxy: ProxyFactory,
    session: aiohttp.ClientSession,
) -> None:
    monkeypatch.setenv("TEST_LOCAL_KEY", "sk-from-env")
    settings = load_settings(write(tmp_path, GOOD.format(base_url=mock.base_url)))
    proxy = await make_proxy(settings)
    result = await post_stream(session, proxy.url, "assistant", "hi")
    assert result.end["text"] == "tok0 tok1 tok2"
    assert mock.stats.last_authorization == "Bearer sk-from-env"
    assert mock.stats.last_request_bodies[-1]["messages"][0] == {"role": "system", "content": "Be brief."}


def test_errors_from_the_environment_name_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, GOOD.format(base_url="http://127.0.0.1:9/v1"))
    monkeypatch.setenv("AGENT_PROXY_SERVER__PROT", "9000")
    monkeypatch.setenv("AGENT_PROXY_RETRY__MAX_ATTEMPTS", "many")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    lines = str(info.value).splitlines()
    assert "AGENT_PROXY_SERVER__PROT: server.prot: Extra inputs are not permitted" in lines
    assert any(line.startswith("AGENT_PROXY_RETRY__MAX_ATTEMPTS: retry.max_attempts: ") for line in lines)
    assert not any(line.startswith(str(path)) for line in lines), lines


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[server]\nport = 'x'\n"
        "[agents.a]\nmodel = 'm'\nmcp_servers = ['nope']\nretry = { max_attempts = 0 }\n"
        "[agents.b]\nmodel = ''\n",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    lines = str(info.value).splitlines()
    assert lines == [
        f"{path}: server.port: Input should be a valid integer, unable to parse string as an integer",
        f"{path}: agents.a.mcp_servers: no [mcp_servers.nope]",
        f"{path}: agents.a.retry.max_attempts: Input should be greater than or equal to 1",
        f"{path}: agents.b.model: must not be empty",
    ]


SECRETS = """
[upstreams.local]
base_url = "http://127.0.0.1:9/v1"
api_key_env = "TEST_UNSET_LOCAL_KEY"

[upstreams.keyless]
base_url = "http://127.0.0.1:9/v1"

[agents.assistant]
model = "local:m"
fallback_models = ["keyless:m", "openai-chat:gpt-4o-mini", "nonsense-provider:x"]
"""


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "TEST_UNSET_LOCAL_KEY")}
    return subprocess.run(
        [sys.executable, "-m", "proxy.cli", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_check_config_needs_no_secrets_and_lists_the_missing_ones_as_warnings(tmp_path: Path) -> None:
    path = write(tmp_path, SECRETS.replace(', "nonsense-provider:x"', ""))
    check = run_cli("check-config", str(path))
    assert check.returncode == 0, check.stderr
    assert "OK (1 agents: assistant)" in check.stdout
    warnings = check.stderr.splitlines()
    assert f"{path}: warning: upstreams.local.api_key_env: TEST_UNSET_LOCAL_KEY is not set" in warnings
    assert any("OPENAI_API_KEY is not set" in w for w in warnings), warnings
    assert not any("keyless" in w for w in warnings), warnings


def test_check_config_reports_every_unbuildable_model(tmp_path: Path) -> None:
    path = write(tmp_path, SECRETS.replace('"local:m"', '"other-nonsense:y"'))
    check = run_cli("check-config", str(path))
    assert check.returncode == 2
    errors = [line for line in check.stderr.splitlines() if "cannot build model" in line]
    assert len(errors) == 2, check.stderr


def test_serve_refuses_an_upstream_whose_key_variable_is_unset(tmp_path: Path) -> None:
    path = write(tmp_path, SECRETS.replace(', "openai-chat:gpt-4o-mini", "nonsense-provider:x"', ""))
    serve = run_cli("serve", "--port", "0", "--config", str(path))
    assert serve.returncode == 2
    assert f"{path}: upstreams.local.api_key_env: TEST_UNSET_LOCAL_KEY is not set" in serve.stderr
