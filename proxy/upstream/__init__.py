"""A lean pydantic-ai model for OpenAI-compatible Chat Completions upstreams: aiohttp + orjson, no openai SDK.

`LeanOpenAIChatModel` is pydantic-ai's `OpenAIChatModel` with its transport replaced: the request body,
the message/tool/output mapping, the response mapping and the error categories are pydantic-ai's own;
the HTTP goes through one shared aiohttp session per upstream (`LeanOpenAIProvider`), and streamed chunks
are parsed with orjson and mapped as dicts instead of being built into SDK objects. Usage::

    provider = LeanOpenAIProvider("mock", base_url="http://127.0.0.1:9100/v1", api_key=key, connect_timeout=5)
    model = LeanOpenAIChatModel("gpt-x", provider=provider, settings=ModelSettings(max_retries=0))
    ...
    await provider.aclose()

Errors are those `OpenAIChatModel` raises: `ModelHTTPError.for_category(...)` classes for HTTP statuses
(with `retry_after`), `in_stream=True` ones for `data: {"error": ...}`, `ModelConnectionError(phase=
"connect"|"read")`, `ModelTimeoutError`, and `ModelAPIError` caused by a `json.JSONDecodeError` for a chunk
or body that is not JSON.
"""

from proxy.upstream._model import LeanOpenAIChatModel
from proxy.upstream._provider import LeanOpenAIProvider
from proxy.upstream._stream import ChunkStream
from proxy.upstream._streamed_response import LeanStreamedResponse

__all__ = ["ChunkStream", "LeanOpenAIChatModel", "LeanOpenAIProvider", "LeanStreamedResponse"]
