"""Structured output: partial snapshots while the object streams, a final object held to the schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import jsonschema
import orjson
import pytest

from proxy.config import ConfigError, load_settings
from proxy.mock_upstream import MockServer
from tests.conftest import ProxyFactory, settings_for
from tests.support import assert_stream_invariants, post_stream

PERSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "age", "tags"],
}


def agent(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "output_schema": PERSON, "output_name": "person", **extra}


async def test_output_streams_partial_snapshots_then_a_valid_final_object(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    proxy = await make_proxy(settings_for(mock, {"p": agent("person?json_chunk=6")}))
    result = await post_stream(session, proxy.url, "p", "make a person")
    outputs = result.of("output")
    assert len(outputs) >= 3
    assert all(o["partial"] for o in outputs[:-1])
    assert outputs[-1]["partial"] is False
    final = outputs[-1]["data"]
    jsonschema.validate(final, PERSON)
    assert result.types()[-2:] == ["output", "end"]
    assert result.end["output"] == final
    assert "text" not in result.end
    assert result.end["finish_reason"] == "stop"
    assert result.end["ttft_s"] is not None
    assert_stream_invariants([e.data for e in result.events])
    # The model was offered the schema as its output tool.
    tools = mock.stats.last_request_bodies[-1]["tools"]
    assert tools[0]["function"]["name"].startswith("final_result")


async def test_invalid_final_object_is_retried_then_ends_with_invalid_output(
    mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    bad = quote(orjson.dumps({"name": 5, "age": -1}).decode())
    model = f"bad?json={bad}"
    proxy = await make_proxy(settings_for(mock, {"p": agent(model, output_retries=1)}))
    result = await post_stream(session, proxy.url, "p", "make a person")
    assert result.types()[-2:] == ["error", "end"]
    error = result.of("error")[0]
    assert error["code"] == "invalid_output"
    assert error["retryable"] is False
    assert result.end["finish_reason"] == "error"
    assert mock.stats.for_model(model).requests == 2  # the first answer and the one output retry
    # The cause, not just "retries exceeded"; and the usage of both requests the upstream billed.
    assert "at (root): 'tags' is a required property" in error["message"]
    assert "at age: -1 is less than the minimum of 0" in error["message"]
    assert result.end["usage"]["requests"] == 2
    assert result.end["usage"]["output_tokens"] >= 2 and result.end["usage"]["input_tokens"] > 0
    # The second request told the model what was wrong.
    retry_prompt = orjson.dumps(mock.stats.last_request_bodies[-1]["messages"]).decode()
    assert "does not match the JSON schema" in retry_prompt


async def test_schema_from_a_file(
    tmp_path: Path, mock: MockServer, make_proxy: ProxyFactory, session: aiohttp.ClientSession
) -> None:
    path = tmp_path / "person.json"
    path.write_bytes(orjson.dumps(PERSON))
    proxy = await make_proxy(settings_for(mock, {"p": {"model": "person", "output_schema": str(path)}}))
    result = await post_stream(session, proxy.url, "p", "make a person")
    jsonschema.validate(result.end["output"], PERSON)


def test_invalid_schema_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[agents.p]\nmodel = "m"\noutput_schema = { type = "object", properties = 5 }\n')
    with pytest.raises(ConfigError, match=r"agents\.p\.output_schema: not a valid JSON Schema"):
        load_settings(config)
