"""Fixtures for the mock upstream tests (all over real sockets)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import boto3
import pytest
from google import genai
from google.genai import types as genai_types
from openai import AsyncAzureOpenAI, AsyncOpenAI

from proxy.mock_upstream import MockServer, start_mock


@pytest.fixture
async def mock() -> AsyncIterator[MockServer]:
    server = await start_mock()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        yield s


@pytest.fixture
async def client(mock: MockServer) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=mock.base_url, api_key="sk-test", max_retries=0) as c:
        yield c


@pytest.fixture
async def anthropic_client(mock: MockServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=mock.url, api_key="x", max_retries=0) as c:
        yield c


@pytest.fixture
def gemini_client(mock: MockServer) -> genai.Client:
    return genai.Client(api_key="x", http_options=genai_types.HttpOptions(base_url=mock.url))


@pytest.fixture
def bedrock_client(mock: MockServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A boto3 `bedrock-runtime` client on the mock; it signs with dummy credentials, the mock ignores them.
    boto3 blocks: call it with `asyncio.to_thread` so the mock keeps running."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return boto3.client("bedrock-runtime", endpoint_url=mock.url, region_name="us-east-1")


@pytest.fixture
async def azure_client(mock: MockServer) -> AsyncIterator[AsyncAzureOpenAI]:
    async with AsyncAzureOpenAI(
        azure_endpoint=mock.url, api_version="2024-10-21", api_key="x", max_retries=0
    ) as c:
        yield c
