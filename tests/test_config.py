"""Configuration: TOML + environment, and errors that name the file, the key and the problem."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from proxy.auth.keys import hash_key
from proxy.cli import main
from proxy.config import ConfigError, load_settings
from proxy.mock_upstream import MockServer
from tests.conftest import ProxyFactory
from tests.serving import serve
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
        ("[server]\nprot = 1\n[agents.a]\nmodel='m'", "server.prot: unknown key (did you mean `port`?)"),
        ("[agent.a]\nmodel='m'", "agent: unknown key (did you mean `agents`?)"),
        (
            "[agents.a]\nmodel='m'\nretry = { max_attempt = 2 }",
            "agents.a.retry.max_attempt: unknown key (did you mean `max_attempts`?)",
        ),
        ("[server]\nxyzzy = 1\n[agents.a]\nmodel='m'", "server.xyzzy: unknown key (known: host, port, "),
        ("server = 1\n[agents.a]\nmodel='m'", "server: must be a table"),
        ("[agents.a]\nmodel='m'\nfallback_models = 'x'", "agents.a.fallback_models: must be an array"),
        ("[upstreams.u]\n[agents.a]\nmodel='m'", "upstreams.u.base_url: is required"),
        (
            "[agents.a]\nmodel='m'\nmcp_servers = [{ url = 'http://127.0.0.1:1/mcp' }]",
            "agents.a.mcp_servers: must be names of [mcp_servers.NAME] tables",
        ),
        ("[agents.a]\nmodel='m'\noutput_schema = 3", "agents.a.output_schema: must be a table (an inline"),
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
    assert "AGENT_PROXY_SERVER__PROT: server.prot: unknown key (did you mean `port`?)" in lines
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


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`agent-proxy ARGS` with `env` and none of the variables the tests leave unset or set."""
    unset = ("OPENAI_API_KEY", "TEST_UNSET_LOCAL_KEY")
    base = {k: v for k, v in os.environ.items() if k not in unset and not k.startswith("AGENT_PROXY_")}
    return subprocess.run(
        [sys.executable, "-m", "proxy.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **env},
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


@dataclass
class Ran:
    code: int
    out: str
    err: list[str]


Run = Callable[..., Ran]


@pytest.fixture
def agent_proxy(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """`agent-proxy ARGS` as `run_cli` runs it, in this process: `cli.main` with `env` set."""

    def run(*args: str, **env: str) -> Ran:
        with monkeypatch.context() as patch:
            for name in os.environ:
                if name.startswith("AGENT_PROXY_") or name in ("OPENAI_API_KEY", "TEST_UNSET_LOCAL_KEY"):
                    patch.delenv(name)
            for name, value in env.items():
                patch.setenv(name, value)
            code = main(list(args))
        out, err = capsys.readouterr()
        return Ran(code, out, err.splitlines())

    return run


def test_a_list_of_tables_for_mcp_servers_is_one_line_not_a_traceback(
    tmp_path: Path, agent_proxy: Run
) -> None:
    path = write(tmp_path, "[agents.a]\nmodel = 'test'\nmcp_servers = [{ url = 'http://127.0.0.1:1/mcp' }]\n")
    for command in (["check-config", str(path)], ["serve", "--port", "0", "--config", str(path)]):
        result = agent_proxy(*command)
        assert result.code == 2
        assert result.err == [
            "invalid configuration:",
            f"{path}: agents.a.mcp_servers: must be names of [mcp_servers.NAME] tables, each of which "
            "defines a server",
        ]


def test_redis_without_its_url_is_a_warning_of_check_config_and_serve_refuses_before_serving(
    tmp_path: Path, agent_proxy: Run
) -> None:
    path = write(tmp_path, "[state]\nbackend = 'redis'\n[agents.a]\nmodel = 'test'\n")
    problem = 'state.redis_url_env: AGENT_PROXY_REDIS_URL is not set (for backend = "redis")'
    check = agent_proxy("check-config", str(path))
    assert check.code == 0, check.err
    assert f"{path}: warning: {problem}" in check.err
    for workers in ("1", "2"):
        serve = agent_proxy("serve", "--port", "0", "--workers", workers, "--config", str(path))
        assert serve.code == 2
        assert serve.err == ["invalid configuration:", f"{path}: {problem}"]


def test_an_unset_token_secret_is_a_warning_like_other_secrets_and_a_short_one_an_error(
    tmp_path: Path, agent_proxy: Run
) -> None:
    path = write(tmp_path, "[auth]\ntoken_secret_env = 'TEST_TOKEN_SECRET'\n[agents.a]\nmodel = 'test'\n")
    unset = agent_proxy("check-config", str(path))
    assert unset.code == 0, unset.err
    assert f"{path}: warning: auth.token_secret_env: TEST_TOKEN_SECRET is not set" in unset.err
    serve = agent_proxy("serve", "--port", "0", "--config", str(path))
    assert serve.code == 2
    assert f"{path}: auth.token_secret_env: TEST_TOKEN_SECRET is not set" in serve.err
    short = agent_proxy("check-config", str(path), TEST_TOKEN_SECRET="short")
    assert short.code == 2
    assert (
        f"{path}: auth.token_secret_env: the environment variable TEST_TOKEN_SECRET must hold a secret of "
        "at least 32 characters" in short.err
    )


def test_a_missing_keys_file_is_blamed_on_the_file_not_on_a_secret_variable(
    tmp_path: Path, agent_proxy: Run
) -> None:
    path = write(
        tmp_path,
        "[auth]\nmode = 'keys'\nkeys_file = 'keys.toml'\ntoken_secret_env = 'AGENT_PROXY_TOKEN_SECRET'\n"
        "[agents.a]\nmodel = 'test'\n",
    )
    check = agent_proxy("check-config", str(path), AGENT_PROXY_TOKEN_SECRET="s" * 32)
    assert check.code == 2
    assert check.err == [
        "invalid configuration:",
        f"{path}: auth.keys_file: {tmp_path / 'keys.toml'}: cannot read: No such file or directory",
    ]


def test_relative_paths_start_at_the_config_files_directory_wherever_it_is_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, agent_proxy: Run
) -> None:
    config = tmp_path / "config"
    (config / "schemas").mkdir(parents=True)
    (config / "tools").mkdir()
    (config / "schemas" / "person.json").write_text(
        '{"type": "object", "properties": {"n": {"type": "string"}}}'
    )
    (config / "keys.toml").write_text(f'[[keys]]\nname = "team"\nsha256 = "{hash_key("k")}"\n')
    path = config / "proxy.toml"
    path.write_text(
        "[auth]\nmode = 'keys'\nkeys_file = 'keys.toml'\n"
        "[mcp_servers.files]\ncommand = 'python'\ncwd = 'tools'\n"
        "[agents.a]\nmodel = 'test'\noutput_schema = 'schemas/person.json'\nmcp_servers = ['files']\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    check = agent_proxy("check-config", "../config/proxy.toml")
    assert check.code == 0, check.err
    assert "OK (1 agents: a)" in check.out
    (elsewhere / "keys.toml").write_text((config / "keys.toml").read_text())
    settings = load_settings("../config/proxy.toml")
    assert settings.mcp_servers["files"].cwd == str(config / "tools")
    assert settings.agents["a"].output_schema == str(config / "schemas" / "person.json")
    assert settings.auth.keys_file == str(config / "keys.toml")
    # A value from the environment is the shell's: relative to the working directory.
    monkeypatch.setenv("AGENT_PROXY_AUTH__KEYS_FILE", "keys.toml")
    assert load_settings("../config/proxy.toml").auth.keys_file == "keys.toml"


TYPO = (
    "AGENT_PROXY_SERVR__PORT: sets no setting and is not named by the config "
    "(did you mean AGENT_PROXY_SERVER__PORT?)"
)


def test_a_variable_that_sets_nothing_is_a_warning_with_the_closest_name(
    tmp_path: Path, agent_proxy: Run
) -> None:
    path = write(
        tmp_path, "[auth]\ntoken_secret_env = 'AGENT_PROXY_TOKEN_SECRET'\n[agents.a]\nmodel = 'test'\n"
    )
    check = agent_proxy(
        "check-config",
        str(path),
        AGENT_PROXY_SERVR__PORT="9000",
        AGENT_PROXY_TOKEN_SECRET="s" * 32,  # named by the config
        AGENT_PROXY_REDIS_URL="redis://127.0.0.1:1/0",  # the default name of [state] redis_url_env
    )
    assert check.code == 0, check.err
    assert check.err == [f"warning: {TYPO}"]


async def test_serve_logs_the_variable_that_sets_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "[agents.a]\nmodel = 'test'\n")
    env = {"AGENT_PROXY_SERVR__PORT": "9000"}
    async with serve("--config", str(path), "--log-format", "text", env=env) as served:
        assert any(TYPO in line for line in served.log), served.log
