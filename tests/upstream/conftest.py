"""Fixtures: both models (the openai SDK path and the lean one) built as `proxy/agents.py` builds them,
and `parity`, which runs one scenario through each against the same mock and returns both observations."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx2
import pytest
from pydantic_ai.models import Model, create_async_httpx2_client
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.profiles import ModelProfile
from pydantic_ai.providers.openai_compatible import OpenAICompatibleProvider
from pydantic_ai.settings import ModelSettings

from proxy.mock_upstream import MockServer
from proxy.upstream import LeanOpenAIChatModel, LeanOpenAIProvider
from tests.upstream.observe import Observation

Kind = Literal["sdk", "lean"]
KINDS: tuple[Kind, Kind] = ("sdk", "lean")
API_KEY = "sk-test"


class ModelFactory(Protocol):
    def __call__(
        self,
        kind: Kind,
        name: str,
        base_url: str,
        *,
        connect_timeout: float = 5.0,
        profile: ModelProfile | None = None,
    ) -> Model: ...


@pytest.fixture
async def models() -> AsyncIterator[ModelFactory]:
    closers: list[Callable[[], Awaitable[None]]] = []

    def make(
        kind: Kind,
        name: str,
        base_url: str,
        *,
        connect_timeout: float = 5.0,
        profile: ModelProfile | None = None,
    ) -> Model:
        model_settings = ModelSettings(max_retries=0)  # as proxy/agents.py: the engine retries
        if kind == "sdk":
            client = create_async_httpx2_client(
                timeout=httpx2.Timeout(None, connect=connect_timeout),
                limits=httpx2.Limits(max_connections=None, max_keepalive_connections=1000),
            )
            closers.append(client.aclose)
            sdk_provider = OpenAICompatibleProvider(
                "mock", base_url=base_url, api_key=API_KEY, http_client=client
            )
            return OpenAIChatModel(name, provider=sdk_provider, profile=profile, settings=model_settings)
        provider = LeanOpenAIProvider(
            "mock", base_url=base_url, api_key=API_KEY, connect_timeout=connect_timeout
        )
        closers.append(provider.aclose)
        return LeanOpenAIChatModel(name, provider=provider, profile=profile, settings=model_settings)

    yield make
    for close in closers:
        await close()


@dataclass
class Pair:
    sdk: Observation
    lean: Observation
    sdk_bodies: list[dict[str, Any]]
    lean_bodies: list[dict[str, Any]]
    sdk_auth: str | None
    lean_auth: str | None

    def assert_same(self) -> None:
        assert self.lean.comparable() == self.sdk.comparable()
        assert self.lean_bodies == self.sdk_bodies
        assert self.lean_auth == self.sdk_auth == f"Bearer {API_KEY}"


Scenario = Callable[[Model, Callable[[], int]], Awaitable[Observation]]


class Parity(Protocol):
    async def __call__(self, name: str, scenario: Scenario, *, connect_timeout: float = 5.0) -> Pair: ...


@pytest.fixture
def parity(mock: MockServer, models: ModelFactory) -> Parity:
    """Run `scenario(model, requests)` on the SDK model, reset the mock, then on the lean model."""

    async def run(name: str, scenario: Scenario, *, connect_timeout: float = 5.0) -> Pair:
        observed: dict[str, tuple[Observation, list[dict[str, Any]], str | None]] = {}
        for kind in KINDS:
            mock.reset()
            model = models(kind, name, mock.base_url, connect_timeout=connect_timeout)
            obs = await scenario(model, lambda: mock.stats.total.requests)
            observed[kind] = (obs, list(mock.stats.last_request_bodies), mock.stats.last_authorization)
        (sdk, sdk_bodies, sdk_auth), (lean, lean_bodies, lean_auth) = observed["sdk"], observed["lean"]
        return Pair(sdk, lean, sdk_bodies, lean_bodies, sdk_auth, lean_auth)

    return run
