"""Keys as a platform team manages them: `keys create`, a keys file, rotation with SIGHUP, and the
secure default, all through real `agent-proxy` processes."""

from __future__ import annotations

import hashlib
import re
import signal
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from proxy.cli import main
from proxy.config import ConfigError, load_settings
from proxy.mock_upstream import MockServer
from tests.auth.helpers import bearer, config_file
from tests.conftest import wait_until
from tests.serving import Served, serve
from tests.support import read_sse


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """`agent-proxy ARGS` in this process (starting the CLI costs seconds on a busy machine):
    (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main(args)
        out, err = capsys.readouterr()
        return code, out, err

    return run


Cli = Callable[..., tuple[int, str, str]]


def create_key(cli: Cli, name: str) -> tuple[str, str]:
    """(the key, the TOML lines for a keys file), as `keys create` prints them."""
    code, out, _ = cli("keys", "create", "--name", name)
    assert code == 0
    (key,) = re.findall(r"^\s+(apk_\S+)$", out, re.M)
    toml = out[out.index("[[auth.keys]]") :].replace("[[auth.keys]]", "[[keys]]")
    return key, toml


def test_keys_create_prints_the_key_once_and_only_its_hash_in_the_config_lines(cli: Cli) -> None:
    code, out, _ = cli("keys", "create", "--name", "search-team", "--agent", "a")
    assert code == 0
    (key,) = re.findall(r"apk_[A-Za-z0-9_-]{40,}", out)
    assert out.count(key) == 1
    toml = out[out.index("[[auth.keys]]") :]
    assert key not in toml
    assert 'name = "search-team"' in toml
    assert f'sha256 = "{hashlib.sha256(key.encode()).hexdigest()}"' in toml
    assert 'agents = ["a"]' in toml
    other_key = re.findall(r"apk_\S+", cli("keys", "create", "--name", "x")[1])[0]
    assert other_key != key


def test_keys_create_refuses_a_name_that_is_not_a_label(cli: Cli) -> None:
    code, _, err = cli("keys", "create", "--name", "has space")
    assert code == 2
    assert "--name" in err


def write_config(tmp_path: Path, mock: MockServer, keys_file: Path) -> Path:
    return config_file(
        tmp_path, mock, {"a": "m?chunks=40&gap_ms=25"}, f'[auth]\nmode = "keys"\nkeys_file = "{keys_file}"\n'
    )


async def status_of(session: aiohttp.ClientSession, served: Served, key: str) -> int:
    async with session.post(
        f"{served.url}/v1/agents/a/run", json={"prompt": "hi"}, headers=bearer(key)
    ) as resp:
        return resp.status


async def sighup_and_wait(served: Served, line: str) -> None:
    seen = sum(line in entry for entry in served.log)
    served.process.send_signal(signal.SIGHUP)
    await wait_until(lambda: sum(line in entry for entry in served.log) > seen, timeout=10)


async def test_sighup_rotates_the_keys_file_without_dropping_running_streams(
    tmp_path: Path, mock: MockServer, session: aiohttp.ClientSession, cli: Cli
) -> None:
    (alpha, alpha_toml), (beta, beta_toml) = create_key(cli, "alpha"), create_key(cli, "beta")
    keys_file = tmp_path / "keys.toml"
    keys_file.write_text(alpha_toml + beta_toml)
    async with serve("--config", str(write_config(tmp_path, mock, keys_file))) as served:
        assert await status_of(session, served, alpha) == 200
        async with (
            session.ws_connect(f"{served.url}/v1/ws", headers=bearer(alpha)) as ws,
            session.post(
                f"{served.url}/v1/agents/a/stream", json={"prompt": "hi"}, headers=bearer(alpha)
            ) as running,
        ):
            assert [e.event for e in (await read_sse(running, stop_after=2)).events] == ["start", "delta"]

            keys_file.write_text(beta_toml)  # alpha revoked
            await sighup_and_wait(served, "keys reloaded")
            assert await status_of(session, served, alpha) == 401
            assert await status_of(session, served, beta) == 200
            # A socket opened with alpha before: its next prompt is refused, the socket stays.
            await ws.send_json({"type": "prompt", "request_id": "r1", "agent": "a", "prompt": "hi"})
            frame = await ws.receive_json(timeout=10)
            assert (frame["type"], frame["code"], frame["request_id"]) == ("error", "unauthorized", "r1")
            rest = await read_sse(running)
        assert rest.end["finish_reason"] == "stop"  # the stream already running on alpha finished

        keys_file.write_text(beta_toml + '[[keys]]\nname = "gamma"\nsha256 = "not-a-hash"\n')
        await sighup_and_wait(served, "keys file not reloaded")
        assert "sha256" in "".join(served.log[-3:])
        assert await status_of(session, served, beta) == 200
        assert await status_of(session, served, alpha) == 401

        keys_file.write_text("this is [not toml")
        await sighup_and_wait(served, "keys file not reloaded")
        assert await status_of(session, served, beta) == 200
        assert await served.stop() == 0
    log = "".join(served.log)
    for secret in (
        alpha,
        beta,
        hashlib.sha256(alpha.encode()).hexdigest(),
        hashlib.sha256(beta.encode()).hexdigest(),
    ):
        assert secret not in log


async def test_a_malformed_keys_file_refuses_to_start_and_names_the_problem(
    tmp_path: Path, mock: MockServer, cli: Cli
) -> None:
    keys_file = tmp_path / "keys.toml"
    keys_file.write_text('[[keys]]\nname = "alpha"\nsha256 = "abc"\nagents = ["nope"]\n')
    code, _, err = cli("serve", "--port", "0", "--config", str(write_config(tmp_path, mock, keys_file)))
    assert code == 2
    assert f"{keys_file}: keys.0.sha256" in err
    keys_file.write_text(f'[[keys]]\nname = "alpha"\nsha256 = "{"a" * 64}"\nagents = ["nope"]\n')
    with pytest.raises(ConfigError, match=r"auth\.keys_file: .*keys\[0\]\.agents: no \[agents\.nope\]"):
        load_settings(write_config(tmp_path, mock, keys_file))


def test_a_public_host_without_auth_refuses_to_start_and_says_which_key_to_set(
    tmp_path: Path, mock: MockServer, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENT_PROXY_CONFIG", raising=False)
    code, _, err = cli("serve", "--host", "0.0.0.0", "--port", "0")  # the built-in demo
    assert code == 2
    assert "allow_unauthenticated = true" in err
    assert 'mode = "keys"' in err
    config = tmp_path / "public.toml"
    config.write_text(f'[server]\nhost = "0.0.0.0"\n[upstreams.mock]\nbase_url = "{mock.base_url}"\n'
                      '[agents.a]\nmodel = "mock:m"\n')  # fmt: skip
    with pytest.raises(ConfigError, match=r"auth\.allow_unauthenticated"):
        load_settings(config)
    config.write_text(config.read_text() + "[auth]\nallow_unauthenticated = true\n")
    assert load_settings(config).auth.allow_unauthenticated
