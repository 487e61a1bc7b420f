"""`GET /openapi.json` (DESIGN 9): OpenAPI 3.1, every route of the app and no other, true bodies."""

from __future__ import annotations

from typing import Any

import aiohttp
import jsonschema
import pytest
from openapi_pydantic import OpenAPI

from proxy.mock_upstream import MockServer
from proxy.openapi import app_routes
from tests.auth.helpers import ALPHA, bearer, entry, keyed_settings
from tests.conftest import Proxy, ProxyFactory, settings_for


@pytest.fixture(params=["none", "keys"])
async def proxy(request: pytest.FixtureRequest, mock: MockServer, make_proxy: ProxyFactory) -> Proxy:
    agents = {"a": "m?chunks=2"}
    if request.param == "keys":
        return await make_proxy(keyed_settings(mock, agents, [entry("alpha", ALPHA)]))
    return await make_proxy(settings_for(mock, agents))


async def document(session: aiohttp.ClientSession, proxy: Proxy) -> dict[str, Any]:
    async with session.get(f"{proxy.url}/openapi.json") as resp:  # no credential: it is public
        assert resp.status == 200
        doc: dict[str, Any] = await resp.json()
    return doc


async def test_every_route_is_documented_and_every_documented_route_exists(
    proxy: Proxy, session: aiohttp.ClientSession
) -> None:
    doc = await document(session, proxy)
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    assert documented == set(app_routes(proxy.app))


async def test_the_document_is_valid_openapi_3_1_with_valid_schemas(
    proxy: Proxy, session: aiohttp.ClientSession
) -> None:
    doc = await document(session, proxy)
    OpenAPI.model_validate(doc)
    assert doc["openapi"].startswith("3.1")
    for schema in doc["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


async def test_the_security_scheme_says_where_keys_and_tokens_go(
    proxy: Proxy, session: aiohttp.ClientSession
) -> None:
    doc = await document(session, proxy)
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "apiKey", "token"}
    if "security" not in doc:
        return  # mode "none": nothing is required
    paths = doc["paths"]
    assert paths["/healthz"]["get"]["security"] == []
    assert {"token": []} in paths["/v1/agents/{agent}/stream"]["get"]["security"]
    assert "security" not in paths["/v1/agents/{agent}/stream"]["post"]  # the document's default: keys


async def test_real_answers_match_their_documented_schemas(
    proxy: Proxy, session: aiohttp.ClientSession
) -> None:
    doc = await document(session, proxy)
    schemas = doc["components"]["schemas"]

    def check(name: str, instance: Any) -> None:
        jsonschema.validate(instance, {**schemas[name], "components": {"schemas": schemas}},
                            cls=jsonschema.Draft202012Validator)  # fmt: skip

    headers = bearer(ALPHA)
    async with session.post(f"{proxy.url}/v1/agents/a/run", json={"prompt": "hi"}, headers=headers) as resp:
        check("RunAnswer", await resp.json())
    async with session.post(f"{proxy.url}/v1/agents/zz/run", json={"prompt": "hi"}, headers=headers) as resp:
        assert resp.status == 404
        check("Error", await resp.json())
    async with session.get(f"{proxy.url}/v1/models", headers=headers) as resp:
        check("ModelList", await resp.json())
