"""`[auth]` validation at start-up: every problem names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import ConfigError, load_settings
from tests.auth.helpers import ALPHA, entry

BASE = '[upstreams.mock]\nbase_url = "http://127.0.0.1:9/v1"\n[agents.a]\nmodel = "mock:m"\n'


def load(tmp_path: Path, auth: str) -> None:
    path = tmp_path / "proxy.toml"
    path.write_text(BASE + auth)
    load_settings(path)


@pytest.mark.parametrize(
    ("auth", "problem"),
    [
        ('[auth]\nmode = "keys"\n', r'auth\.keys: mode = "keys" needs'),
        (
            '[auth]\nmode = "keys"\n[[auth.keys]]\nname = "a b"\nsha256 = "' + "a" * 64 + '"\n',
            r"auth\.keys\.0\.name",
        ),
        ('[auth]\nmode = "keys"\n[[auth.keys]]\nname = "x"\nsha256 = "abc"\n', r"auth\.keys\.0\.sha256"),
        (
            '[auth]\nmode = "keys"\n[[auth.keys]]\nname = "x"\nsha256 = "'
            + "a" * 64
            + '"\nagents = ["zz"]\n',
            r"auth\.keys\[0\]\.agents: no \[agents\.zz\]",
        ),
        (
            '[auth]\nmode = "keys"\n'
            + '[[auth.keys]]\nname = "x"\nsha256 = "'
            + "a" * 64
            + '"\n'
            + '[[auth.keys]]\nname = "x"\nsha256 = "'
            + "b" * 64
            + '"\n',
            r"auth\.keys\[1\]\.name: 'x' is used twice",
        ),
        ("[auth]\ntoken_ttl_s = 3601\n", r"auth\.token_ttl_s"),
        ('[auth]\nkeys_file = "/nonexistent/keys.toml"\n', r"auth\.keys_file: .*cannot read"),
        ("[auth]\nlimits = 3\n", r"auth\.limits: unknown key"),
    ],
)
def test_bad_auth_settings_are_refused_naming_the_key(tmp_path: Path, auth: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load(tmp_path, auth)


def test_a_key_entry_with_limits_and_agents_loads(tmp_path: Path) -> None:
    key = entry("search-team", ALPHA)
    load(
        tmp_path,
        f'[auth]\nmode = "keys"\n[[auth.keys]]\nname = "{key["name"]}"\nsha256 = "{key["sha256"]}"\n'
        'agents = ["a"]\nlimits = { requests_per_minute = 600, concurrent_streams = 5 }\n',
    )
