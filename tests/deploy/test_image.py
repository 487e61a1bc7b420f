"""deploy/Dockerfile. No container engine can pull a base image here, so: hadolint checks the file,
the build stage's own install step (deploy/install-venv.sh, as the Dockerfile runs it, on the files
its COPY lines bring) builds a fresh virtualenv, and that virtualenv's `agent-proxy` runs the
Dockerfile's ENTRYPOINT against a mock upstream while its HEALTHCHECK command passes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from tests.serving import serve
from tests.support import free_port, post_stream

from .conftest import DEPLOY, DEPLOYED_ENV, ROOT, mock_upstream_process, venv_tool

DOCKERFILE = DEPLOY / "Dockerfile"
VENV_IN_IMAGE = "/opt/agent-proxy"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [args for ins, args in self.instructions if ins == instruction]


def stages() -> list[Stage]:
    """The Dockerfile's stages: (INSTRUCTION, arguments) with continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction, args = instruction.upper(), " ".join(args.split())
        if instruction == "FROM":
            base, _, name = args.partition(" AS ")
            found.append(Stage(base, name or None))
        else:
            found[-1].instructions.append((instruction, args))
    return found


def exec_form(args: str) -> list[str]:
    words: list[str] = json.loads(args)
    return words


def test_dockerfile_is_hadolint_clean() -> None:
    result = subprocess.run(
        [venv_tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install agent-proxy\n")
    result = subprocess.run([venv_tool("hadolint"), str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3006" in result.stdout  # untagged base image


def test_two_slim_stages_and_a_final_one_that_installs_nothing_and_runs_as_a_user() -> None:
    build, final = stages()
    assert build.base == final.base == "python:3.11-slim"
    assert final.all("COPY") == [f"--from={build.name} {VENV_IN_IMAGE} {VENV_IN_IMAGE}"]
    for run in final.all("RUN"):
        assert not re.search(r"apt-get|apk|pip|gcc|build-essential", run), run
    [user] = final.all("USER")
    assert user.split(":")[0] not in {"0", "root"}
    [entrypoint] = final.all("ENTRYPOINT")
    assert exec_form(entrypoint) == ["agent-proxy", "serve", "--host", "0.0.0.0"]
    env = " ".join(final.all("ENV"))
    assert "AGENT_PROXY_CONFIG=/etc/agent-proxy/agent-proxy.toml" in env
    assert f"PATH={VENV_IN_IMAGE}/bin:" in env


async def healthcheck(venv: Path, port: int) -> int:
    """The exit code of the HEALTHCHECK command, run by the venv's python against `port`."""
    [check] = stages()[-1].all("HEALTHCHECK")
    command = exec_form(check.split(" CMD ", 1)[1])
    assert command[0] == "python" and "/healthz" in command[-1]
    args = [word.replace("127.0.0.1:8080", f"127.0.0.1:{port}") for word in command[1:]]
    process = await asyncio.create_subprocess_exec(
        venv / "bin" / "python", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    async with asyncio.timeout(30):
        return await process.wait()


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the build stage builds: its COPY sources laid out in a fresh context directory, then its
    RUN step, with the image's venv path moved under a temp dir. pip's cache is used (the image sets
    PIP_NO_CACHE_DIR; this does not), so this takes about a minute rather than several."""
    build = stages()[0]
    context = tmp_path_factory.mktemp("context")
    for copy in build.all("COPY"):
        *sources, target = shlex.split(copy)
        for source in sources:
            src, dest = ROOT / source, context / target
            if src.is_dir():  # Docker copies a directory's contents
                shutil.copytree(src, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                dest = dest / src.name if target.endswith("/") else dest
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, dest)
    venv = tmp_path_factory.mktemp("image") / "agent-proxy"
    [run] = build.all("RUN")
    command = [str(venv) if word == VENV_IN_IMAGE else word for word in exec_form(run)]
    # The base image's python3 is CPython 3.11 on PATH; here that is the interpreter running the tests.
    python_dir = context / ".python"
    python_dir.mkdir()
    (python_dir / "python3").symlink_to(getattr(sys, "_base_executable", sys.executable))
    env = {**os.environ, "PATH": f"{python_dir}:{os.environ['PATH']}", "PIP_NO_CACHE_DIR": "0"}
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(command, cwd=context, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return venv


@pytest.mark.timeout(600)
async def test_the_build_stage_installs_a_proxy_that_serves_streams_and_passes_its_healthcheck(
    image_venv: Path,
) -> None:
    assert await healthcheck(image_venv, free_port()) != 0, "the healthcheck must fail when nothing answers"

    entrypoint = exec_form(stages()[-1].all("ENTRYPOINT")[0])
    args = [("127.0.0.1" if word == "0.0.0.0" else word) for word in entrypoint[2:]]  # loopback only
    async with mock_upstream_process() as mock:
        env = {
            "AGENT_PROXY_CONFIG": str(DEPLOY / "agent-proxy.toml"),
            # The compose host name `mock-upstream` does not resolve here; the environment overrides it.
            "AGENT_PROXY_UPSTREAMS__MOCK__BASE_URL": mock.base_url,
            **DEPLOYED_ENV,  # keys, as deployed: the example key is "demo-key-change-me"
        }
        program = [str(image_venv / "bin" / entrypoint[0])]
        async with serve(*args, env=env, program=program) as served:
            port = int(served.url.rsplit(":", 1)[1])
            assert await healthcheck(image_venv, port) == 0
            key = {"Authorization": "Bearer demo-key-change-me"}
            async with aiohttp.ClientSession(headers=key) as session:
                result = await post_stream(session, served.url, "assistant", "hello image")
            assert result.end["finish_reason"] == "stop"
            assert result.end["text"].startswith("echo: hello image")
            assert await served.stop() == 0
