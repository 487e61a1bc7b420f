"""Refused requests leave one log line each, with code, reason, key name and agent, and a flood of
them is cut to a few lines per code that count what they left out."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import pytest

from proxy.log_fields import FIELDS_ATTR
from proxy.mock_upstream import MockServer
from proxy.observability.refusal_log import REFUSAL_LOGGER, Refusal, RefusalLog
from tests.auth.helpers import ALPHA, BETA, TOKEN_SECRET, TOKEN_SECRET_ENV, bearer, entry, keyed_settings
from tests.conftest import ProxyFactory


def lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [getattr(r, FIELDS_ATTR) for r in caplog.records if r.name == REFUSAL_LOGGER]


async def test_each_refusal_is_one_line_naming_code_reason_key_and_agent(
    mock: MockServer,
    make_proxy: ProxyFactory,
    session: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(TOKEN_SECRET_ENV, TOKEN_SECRET)
    keys = [entry("alpha", ALPHA, limits={"requests_per_minute": 1}), entry("beta", BETA, agents=["b"])]
    proxy = await make_proxy(
        keyed_settings(mock, {"a": "m", "b": "m"}, keys, token_secret_env=TOKEN_SECRET_ENV)
    )
    caplog.set_level(logging.INFO, logger=REFUSAL_LOGGER)
    run = f"{proxy.url}/v1/agents/a/run"
    chat = {"model": "b", "messages": [{"role": "user", "content": "x"}]}
    asked: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", run, {"json": {"prompt": "SECRET-PROMPT"}}),
        ("POST", run, {"json": {"prompt": "SECRET-PROMPT"}, "headers": bearer(BETA)}),
        ("POST", run, {"json": {"prompt": " "}, "headers": bearer(ALPHA)}),
        ("POST", run, {"json": {"prompt": "SECRET-PROMPT"}, "headers": bearer(ALPHA)}),
        ("POST", run, {"json": {"prompt": "SECRET-PROMPT"}, "headers": bearer(ALPHA)}),
        ("POST", f"{proxy.url}/v1/chat/completions", {"json": chat, "headers": bearer(ALPHA)}),
    ]
    statuses = []
    for method, url, kwargs in asked:
        async with session.request(method, url, **kwargs) as resp:
            statuses.append(resp.status)
    assert statuses == [401, 403, 422, 200, 429, 429]

    got = [(x["status"], x["code"], x["reason"], x["key"], x["agent"], x["route"]) for x in lines(caplog)]
    assert got == [
        (401, "unauthorized", "missing", None, "a", "/v1/agents/{agent}/run"),
        (403, "forbidden_agent", None, "beta", "a", "/v1/agents/{agent}/run"),
        (422, "invalid_prompt", None, "alpha", "a", "/v1/agents/{agent}/run"),
        (429, "rate_limited", None, "alpha", "a", "/v1/agents/{agent}/run"),
        (429, "rate_limited", None, "alpha", "b", "/v1/chat/completions"),
    ]
    assert all(x["event"] == "request_refused" and x["suppressed"] == 0 for x in lines(caplog))
    assert "SECRET" not in caplog.text and ALPHA not in caplog.text and BETA not in caplog.text


async def test_a_flood_of_refusals_is_cut_to_a_few_lines(
    mock: MockServer,
    make_proxy: ProxyFactory,
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = await make_proxy(keyed_settings(mock, {"a": "m"}, [entry("alpha", ALPHA)]))
    caplog.set_level(logging.INFO, logger=REFUSAL_LOGGER)
    for _ in range(25):
        async with session.get(f"{proxy.url}/v1/nothing") as resp:
            assert resp.status == 404
    got = lines(caplog)
    assert len(got) == 10
    assert {(x["code"], x["method"], x["route"]) for x in got} == {("not_found", "GET", "/v1/nothing")}


def test_the_line_after_a_quiet_spell_counts_the_refusals_left_out(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = RefusalLog(per_interval=2, interval_s=60, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger=REFUSAL_LOGGER)
    refusal = Refusal(status=429, code="rate_limited", method="POST", route="/r", key="k", agent="a")

    def flood(times: int) -> None:
        for _ in range(times):
            if log.admits(refusal.code):
                log.write(refusal)

    flood(5)
    assert log.admits("unauthorized")  # another code has its own allowance
    now[0] = 61
    flood(1)
    assert [x["suppressed"] for x in lines(caplog)] == [0, 0, 3]
