"""An agent's `aliases`: the model names clients send (Claude Code's, Codex's) reach the agent."""

from __future__ import annotations

import aiohttp
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy.config import Settings
from proxy.mock_upstream import MockServer
from tests.conftest import ProxyFactory, settings_for
from tests.test_openai import HI, content_of, openai_client, stream_chunks

AGENTS = {
    "coder": {"model": "m?chunks=2", "aliases": ["claude-sonnet-*", "gpt-5*"]},
    "small": {"model": "m?chunks=3", "aliases": ["claude-haiku-*", "claude-sonnet-4-5-mini"]},
    "claude-sonnet-exact": {"model": "m?chunks=4"},
}


async def test_alias_globs_route_model_names_to_agents_name_first_then_file_order(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, AGENTS))
    async with openai_client(proxy) as client:
        answers = {
            model: len(content_of(await stream_chunks(client, model)))
            for model in (
                "claude-sonnet-4-5-20250929",
                "gpt-5.1-codex",
                "claude-haiku-4-5",
                "claude-sonnet-4-5-mini",  # `coder`'s glob matches first: file order decides
                "claude-sonnet-exact",  # an agent's own name wins over a matching glob
                "small",
            )
        }
    assert answers == {
        "claude-sonnet-4-5-20250929": 2,
        "gpt-5.1-codex": 2,
        "claude-haiku-4-5": 3,
        "claude-sonnet-4-5-mini": 2,
        "claude-sonnet-exact": 4,
        "small": 3,
    }


async def test_a_model_name_no_agent_or_alias_matches_is_404_model_not_found(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, AGENTS))
    async with openai_client(proxy) as client:
        with pytest.raises(openai.NotFoundError) as caught:
            await client.chat.completions.create(model="claude-opus-4", messages=HI)
    assert caught.value.code == "model_not_found"
    assert "claude-opus-4" in caught.value.message


async def test_metrics_name_the_agent_not_the_alias_the_client_sent(
    mock: MockServer, make_proxy: ProxyFactory
) -> None:
    proxy = await make_proxy(settings_for(mock, AGENTS))
    async with openai_client(proxy) as client:
        await stream_chunks(client, "claude-sonnet-4-5-20250929")
    async with aiohttp.ClientSession() as session, session.get(f"{proxy.url}/metrics") as resp:
        text = await resp.text()
    agents = {
        s.labels["agent"]
        for family in text_string_to_metric_families(text)
        if family.name == "agent_proxy_requests"
        for s in family.samples
        if s.name == "agent_proxy_requests_total" and s.labels.get("transport") == "openai" and s.value
    }
    assert agents == {"coder"}


def test_aliases_must_be_a_list_of_strings() -> None:
    with pytest.raises(ValueError, match="aliases"):
        Settings(agents={"a": {"model": "openai:gpt-4o", "aliases": "claude-*"}})
