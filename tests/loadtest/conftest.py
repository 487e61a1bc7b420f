"""Fixtures for the load generator's tests: a scripted streaming server on a free local port."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from .loadtest_fixture import STATS, Fixture, make_app


@pytest.fixture
async def fixture_server(aiohttp_server: Callable[[web.Application], Awaitable[TestServer]]) -> Fixture:
    app = make_app()
    server = await aiohttp_server(app)
    return Fixture(url=str(server.make_url("")).rstrip("/"), stats=app[STATS])
