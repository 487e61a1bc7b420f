"""`LeanOpenAIChatModel`: pydantic-ai's `OpenAIChatModel` with the openai SDK swapped for aiohttp + orjson.

Everything that decides *what* is sent and *what* comes back is pydantic-ai's, inherited: settings and
profile handling, message/tool/output-tool mapping (the request body is built by `_completions_create`
and handed to the provider's stand-in client), non-streamed response mapping (`_process_response`),
finish reasons, usage, error categories. What changes is how: `LeanOpenAIProvider` does the HTTP with a
shared aiohttp session, and a stream's chunks stay dicts (`ChunkStream`) that `LeanStreamedResponse`
maps with dict lookups, instead of pydantic models built by the SDK for every chunk.

With `openai_include_unmapped_response_data` set, the stream is mapped by pydantic-ai's own
`OpenAIStreamedResponse` from SDK chunk objects (built from the dicts, as the SDK builds them),
because only it records what it did not map.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from openai.types.chat import ChatCompletionChunk
from pydantic_ai.exceptions import UnexpectedModelBehavior
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import ModelRequestParameters, StreamedResponse, check_allow_model_requests
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIChatModelSettings
from pydantic_ai.models.openai._model_response_streaming import ModelResponseStreamedResponse
from pydantic_ai.profiles import ModelProfileSpec
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext

from proxy.upstream._provider import LeanOpenAIProvider
from proxy.upstream._stream import ChunkStream
from proxy.upstream._streamed_response import LeanStreamedResponse


class SDKChunks:
    """A `ChunkStream` as the SDK's stream of `ChatCompletionChunk`s, for pydantic-ai's own stream mapping."""

    def __init__(self, stream: ChunkStream) -> None:
        self._stream = stream

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[ChatCompletionChunk]:
        async for chunk in self._stream:
            yield ChatCompletionChunk.construct(**chunk)

    async def close(self) -> None:
        self._stream.close()


class LeanOpenAIChatModel(OpenAIChatModel):
    """An OpenAI-compatible Chat Completions model on aiohttp; behaves as `OpenAIChatModel` does.

    `provider` is shared by the models of one upstream (one connection pool); close it with
    `await provider.aclose()`. No retries of its own (`max_retries` is accepted and ignored)."""

    _sdk_stream_mapping: bool = False
    """Map every stream with pydantic-ai's `OpenAIStreamedResponse` (for comparisons and benchmarks)."""

    def __init__(
        self,
        model_name: str,
        *,
        provider: LeanOpenAIProvider,
        profile: ModelProfileSpec | None = None,
        settings: ModelSettings | None = None,
    ) -> None:
        super().__init__(model_name, provider=provider, profile=profile, settings=settings)

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        check_allow_model_requests()
        model_settings, model_request_parameters = self.prepare_request(
            model_settings, model_request_parameters
        )
        settings = cast(OpenAIChatModelSettings, model_settings or {})
        response: Any = await self._completions_create(messages, True, settings, model_request_parameters)
        if isinstance(response, ModelResponse):  # pragma: no cover - Azure's content filter only
            yield ModelResponseStreamedResponse(
                model_request_parameters=model_request_parameters, _model_response=response
            )
            return
        stream = cast(ChunkStream, response)
        async with stream:
            if self._sdk_stream_mapping or settings.get("openai_include_unmapped_response_data"):
                sdk_stream: Any = SDKChunks(stream)
                yield await self._process_streamed_response(sdk_stream, model_request_parameters, settings)
                return
            first = await anext(stream, None)
            if first is None:
                raise UnexpectedModelBehavior("Streamed response ended without content or tool calls")
            streamed = LeanStreamedResponse(
                model_request_parameters=model_request_parameters,
                _model_name=first.get("model") or self.model_name,
                _model_profile=self.profile,
                _response=cast(Any, None),
                _provider_name=self._provider.name,
                _model_id_namespace=self._provider.model_id_namespace,
                _provider_url=self._provider.base_url,
                _model_settings=settings,
                _stream=stream,
                _first_chunk=first,
            )
            streamed.canonical_system = self._canonical_system_stamp
            yield streamed
