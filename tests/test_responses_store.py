"""Stored responses (DESIGN 13): `store` and `previous_response_id` on the conversation store, owned by
the key that made them, read and deleted by id; on Redis, across `agent-proxy serve` processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI

from proxy.auth.keys import hash_key
from proxy.mock_upstream import MockServer
from tests.auth.helpers import ALPHA, BETA, entry, keyed_settings
from tests.conftest import Proxy, ProxyFactory
from tests.serving import serve

ECHO = "m?echo=1"
"""Answers `echo: <last user message> (messages: <number of messages received>)`."""


def client(url: str, key: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


@pytest.fixture
async def proxy(mock: MockServer, make_proxy: ProxyFactory) -> Proxy:
    return await make_proxy(keyed_settings(mock, {"a": ECHO}, [entry("alpha", ALPHA), entry("beta", BETA)]))


async def test_a_stored_response_is_continued_read_and_deleted_by_its_own_key(proxy: Proxy) -> None:
    async with client(proxy.url, ALPHA) as alpha:
        first = await alpha.responses.create(model="a", input="one")
        second = await alpha.responses.create(model="a", input="two", previous_response_id=first.id)
        fetched = await alpha.responses.retrieve(second.id)
        await alpha.responses.delete(first.id)
        with pytest.raises(openai.NotFoundError):
            await alpha.responses.retrieve(first.id)
        third = await alpha.responses.create(model="a", input="three", previous_response_id=second.id)
    assert first.output_text == "echo: one (messages: 1)"
    assert second.output_text == "echo: two (messages: 3)"
    assert fetched.id == second.id and fetched.status == "completed"
    assert fetched.output_text == second.output_text
    assert third.output_text == "echo: three (messages: 5)"  # a response lives on when its parent goes


async def test_another_keys_response_is_unknown_to_every_endpoint(proxy: Proxy) -> None:
    async with client(proxy.url, ALPHA) as alpha, client(proxy.url, BETA) as beta:
        mine = await alpha.responses.create(model="a", input="secret")
        with pytest.raises(openai.NotFoundError) as continued:
            await beta.responses.create(model="a", input="hi", previous_response_id=mine.id)
        with pytest.raises(openai.NotFoundError):
            await beta.responses.retrieve(mine.id)
        with pytest.raises(openai.NotFoundError):
            await beta.responses.delete(mine.id)
        still = await alpha.responses.retrieve(mine.id)
    assert continued.value.code == "previous_response_not_found"
    assert continued.value.param == "previous_response_id"
    assert still.output_text == mine.output_text


async def test_store_false_keeps_nothing(proxy: Proxy) -> None:
    async with client(proxy.url, ALPHA) as alpha:
        response = await alpha.responses.create(model="a", input="hi", store=False)
        with pytest.raises(openai.NotFoundError):
            await alpha.responses.retrieve(response.id)
    assert response.to_dict()["store"] is False
    assert len(proxy.conversations) == 0


@pytest.mark.parametrize("response_id", ["conv_0123", "resp_unknown"])
async def test_an_id_that_names_no_stored_response_is_404(proxy: Proxy, response_id: str) -> None:
    async with client(proxy.url, ALPHA) as alpha:
        with pytest.raises(openai.NotFoundError):
            await alpha.responses.retrieve(response_id)
        with pytest.raises(openai.NotFoundError):
            await alpha.responses.delete(response_id)


KEYS = (("alpha", ALPHA), ("beta", BETA))


def replica_config(tmp_path: Path, mock: MockServer, state: dict[str, Any]) -> Path:
    path = tmp_path / "replica.toml"
    path.write_text(
        "[state]\n" + "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in state.items())
        + f'[upstreams.mock]\nbase_url = "{mock.base_url}"\n'
        + f'[agents.a]\nmodel = "mock:{ECHO}"\n'
        + '[auth]\nmode = "keys"\n'
        + "".join(f'[[auth.keys]]\nname = "{n}"\nsha256 = "{hash_key(k)}"\n' for n, k in KEYS)
    )  # fmt: skip
    return path


async def test_on_redis_a_response_stored_by_one_process_is_continued_on_another(
    mock: MockServer, redis_state: dict[str, Any], tmp_path: Path
) -> None:
    path = replica_config(tmp_path, mock, redis_state)
    async with (
        serve("--config", str(path)) as one,
        serve("--config", str(path)) as other,
        client(one.url, ALPHA) as on_one,
        client(other.url, ALPHA) as on_other,
        client(other.url, BETA) as beta,
    ):
        first = await on_one.responses.create(model="a", input="one")
        second = await on_other.responses.create(model="a", input="two", previous_response_id=first.id)
        fetched = await on_one.responses.retrieve(second.id)
        with pytest.raises(openai.NotFoundError):
            await beta.responses.retrieve(second.id)
        await on_other.responses.delete(second.id)
        with pytest.raises(openai.NotFoundError):
            await on_one.responses.retrieve(second.id)
    assert second.output_text == "echo: two (messages: 3)"
    assert fetched.output_text == second.output_text
