"""Every fault of the mock, streamed and not: the lean model raises what `OpenAIChatModel` raises (class,
categories, status, `retry_after`, `in_stream`, phase, body, JSON cause) and the engine classifies both
alike; what was streamed before the fault and the number of upstream requests are the same too."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic_ai.messages import ModelResponse
from pydantic_ai.models import Model
from pydantic_ai.settings import ModelSettings

from proxy.mock_upstream import MockServer, closed_port_url
from tests.upstream.conftest import KINDS, ModelFactory, Parity
from tests.upstream.observe import Observation, describe_error, observe_run, observe_stream

# model name -> (class name, category that must hold, engine `code`, what else must hold)
HTTP_FAULTS: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    "f?fault=http400": ("ModelRequestRejectedError", "ModelHTTPError", "upstream_bad_request", {}),
    "f?fault=http401": ("ModelAuthenticationError", "ModelHTTPError", "upstream_auth_failed", {}),
    "f?fault=http403": ("ModelAuthenticationError", "ModelHTTPError", "upstream_auth_failed", {}),
    "f?fault=http404": ("ModelNotFoundError", "ModelHTTPError", "upstream_not_found", {}),
    "f?fault=context_length": (
        "ModelContextWindowExceededError",
        "ModelRequestRejectedError",
        "context_too_long",
        {"provider_error_code": "context_length_exceeded"},
    ),
    "f?fault=http408": ("ModelHTTPError", "ModelHTTPError", "upstream_unavailable", {}),
    "f?fault=http429&retry_after=2": (
        "ModelRateLimitError",
        "ModelHTTPError",
        "upstream_rate_limited",
        {"retry_after": 2.0, "provider_error_code": "rate_limit_exceeded"},
    ),
    "f?fault=http429&retry_after=0.25": (
        "ModelRateLimitError",
        "ModelHTTPError",
        "upstream_rate_limited",
        {"retry_after": 0.25},
    ),
    "f?fault=http429": (
        "ModelRateLimitError",
        "ModelHTTPError",
        "upstream_rate_limited",
        {"retry_after": None},
    ),
    "f?fault=http500": ("ModelServerError", "ModelHTTPError", "upstream_unavailable", {"in_stream": False}),
    "f?fault=http502": ("ModelServerError", "ModelHTTPError", "upstream_unavailable", {}),
    "f?fault=http503&retry_after=3": (
        "ModelOverloadedError",  # the mock's message says "overloaded"
        "ModelUnavailableError",
        "upstream_unavailable",
        {"retry_after": 3.0},
    ),
    "f?fault=http504": ("ModelServerError", "ModelHTTPError", "upstream_unavailable", {}),
}


def _check(obs: Observation, cls: str, category: str, code: str, extra: dict[str, Any]) -> None:
    assert obs.error is not None, obs.events
    assert obs.error["class"] == cls
    assert category in obs.error["categories"]
    assert obs.error["engine"].code == code
    for key, value in extra.items():
        assert obs.error[key] == value, key


@pytest.mark.parametrize("streamed", [True, False], ids=["stream", "run"])
@pytest.mark.parametrize("name", HTTP_FAULTS)
async def test_http_errors(parity: Parity, name: str, streamed: bool) -> None:
    async def scenario(model: Model, requests: Any) -> Observation:
        observe = observe_stream if streamed else observe_run
        return await observe(model, requests=requests)

    pair = await parity(name, scenario)
    pair.assert_same()
    _check(pair.lean, *HTTP_FAULTS[name])
    error = pair.lean.error
    assert error is not None
    assert error["status_code"] == (int(name.split("http")[1][:3]) if "http" in name else 400)
    assert isinstance(error["body"], dict)
    assert error["body"]["message"].startswith("mock: ")
    assert pair.lean.requests == 1


# model name -> (class name, category, engine code, extra attributes, text streamed before the fault)
STREAM_FAULTS: dict[str, tuple[str, str, str, dict[str, Any], str]] = {
    "f?fault=drop&after=0": (
        "ModelConnectionError",
        "ModelAPIError",
        "upstream_dropped",
        {"phase": "read"},
        "",
    ),
    "f?fault=drop&after=2": (
        "ModelConnectionError",
        "ModelAPIError",
        "upstream_dropped",
        {"phase": "read"},
        "tok0 tok1",
    ),
    "f?fault=drop_headers": (
        "ModelConnectionError",
        "ModelAPIError",
        "upstream_dropped",
        {"phase": "read"},
        "",
    ),
    "f?fault=instream_error&after=0": (
        "ModelServerError",
        "ModelHTTPError",
        "upstream_stream_error",
        {"in_stream": True, "status_code": 500, "provider_error_code": "server_error"},
        "",
    ),
    "f?fault=instream_error&after=2": (
        "ModelServerError",
        "ModelHTTPError",
        "upstream_stream_error",
        {"in_stream": True, "status_code": 500},
        "tok0 tok1",
    ),
    "f?fault=malformed&after=0": (
        "ModelAPIError",
        "ModelAPIError",
        "upstream_malformed",
        {"json_cause": True},
        "",
    ),
    "f?fault=malformed&after=2": (
        "ModelAPIError",
        "ModelAPIError",
        "upstream_malformed",
        {"json_cause": True},
        "tok0 tok1",
    ),
}


@pytest.mark.parametrize("name", STREAM_FAULTS)
async def test_stream_faults(parity: Parity, name: str) -> None:
    async def scenario(model: Model, requests: Any) -> Observation:
        return await observe_stream(model, requests=requests)

    pair = await parity(name + "&chunks=4", scenario)
    pair.assert_same()
    cls, category, code, extra, text = STREAM_FAULTS[name]
    _check(pair.lean, cls, category, code, extra)
    assert pair.lean.text == text
    assert pair.lean.requests == 1


@pytest.mark.parametrize(
    "name",
    [
        "f?fault=drop",
        "f?fault=drop_headers",
        "f?fault=instream_error",
        "f?fault=malformed",
        "f?fault=no_finish",
    ],
)
async def test_faults_without_streaming(parity: Parity, name: str) -> None:
    async def scenario(model: Model, requests: Any) -> Observation:
        return await observe_run(model, requests=requests)

    pair = await parity(name + "&chunks=3", scenario)
    pair.assert_same()
    if name.endswith("no_finish"):
        assert pair.lean.output == "tok0 tok1 tok2"
        last = pair.lean.raw_messages[-1]
        assert isinstance(last, ModelResponse)
        assert last.provider_details is not None and "finish_reason" not in last.provider_details
    else:
        assert pair.lean.error is not None


async def test_no_finish_reason(parity: Parity) -> None:
    """A stream ending in `[DONE]` without a finish reason: `stop`, but no `finish_reason` in the details
    (which is how the engine tells that the upstream stopped without finishing)."""

    async def scenario(model: Model, requests: Any) -> Observation:
        return await observe_stream(model, requests=requests)

    pair = await parity("f?fault=no_finish&after=2&chunks=4", scenario)
    pair.assert_same()
    assert pair.lean.error is None
    last = pair.lean.raw_messages[-1]
    assert isinstance(last, ModelResponse)
    assert last.finish_reason == "stop"
    assert last.provider_details is not None
    assert "finish_reason" not in last.provider_details
    assert pair.lean.usage.output_tokens == 0


async def test_empty_stream(parity: Parity) -> None:
    """`[DONE]` at once: no chunk at all, which pydantic-ai reports as unexpected model behaviour."""

    async def scenario(model: Model, requests: Any) -> Observation:
        return await observe_stream(model, requests=requests)

    pair = await parity("f?fault=no_finish&after=0", scenario)
    pair.assert_same()
    assert pair.lean.error is not None
    assert pair.lean.error["class"] == "UnexpectedModelBehavior"


async def test_read_timeout_setting(parity: Parity) -> None:
    """The `timeout` model setting bounds the wait between chunks, as the SDK applies it."""

    async def scenario(model: Model, requests: Any) -> Observation:
        return await observe_stream(model, settings=ModelSettings(timeout=0.3), requests=requests)

    pair = await parity("f?fault=stall&after=2&chunks=4", scenario)
    pair.assert_same()
    _check(pair.lean, "ModelTimeoutError", "ModelConnectionError", "read_timeout", {"phase": "read"})
    assert pair.lean.text == "tok0 tok1"


async def test_connection_refused(models: ModelFactory) -> None:
    errors = []
    for kind in KINDS:
        obs = await observe_stream(models(kind, "m", closed_port_url()))
        assert obs.error is not None
        errors.append(obs.error)
    assert errors[0] == errors[1]
    assert errors[1]["class"] == "ModelConnectionError"
    assert errors[1]["phase"] == "connect"
    assert errors[1]["engine"].code == "upstream_unreachable"


async def test_connect_timeout(models: ModelFactory, blackhole_url: str) -> None:
    errors = []
    for kind in KINDS:
        obs = await observe_stream(models(kind, "m", blackhole_url, connect_timeout=0.2))
        assert obs.error is not None
        errors.append(obs.error)
    assert errors[0] == errors[1]
    assert errors[1]["class"] == "ModelTimeoutError"
    assert errors[1]["phase"] == "connect"
    assert errors[1]["engine"].code == "connect_timeout"


async def test_describe_error_is_message_free(mock: MockServer, models: ModelFactory) -> None:
    """The exception message differs (aiohttp vs httpx wording); everything compared above does not."""
    obs = await observe_stream(models("lean", "f?fault=drop&after=1", mock.base_url))
    assert obs.exception is not None
    assert "message" not in describe_error(obs.exception)
    assert str(obs.exception).startswith("Connection error")
