"""`LeanOpenAIProvider`: one OpenAI-compatible upstream, reached over one shared aiohttp session.

It is a pydantic-ai `Provider` (name, base URL, model profiles exactly as `OpenAICompatibleProvider`
gives them), and its `client` is a small stand-in for the part of `AsyncOpenAI` that `OpenAIChatModel`
calls (`client.chat.completions.create(**params)`): it takes the very parameters pydantic-ai would have
given the SDK, drops the omitted ones, merges `extra_body`, and POSTs them with orjson. A streamed
answer comes back as a `ChunkStream` of plain dicts, a complete one as the SDK's `ChatCompletion`
(built with the SDK's own `construct`, as the SDK does), so pydantic-ai's response mapping applies.

No retries, no read or total timeout (the engine has its own deadlines): only `connect_timeout`, and a
`timeout` model setting if one is given, as the SDK would apply it (connect and between reads). As the
SDK's httpx client does, it trusts the environment: `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` (read once,
when the session is created) and, for TLS, the CA bundle httpx uses (`SSL_CERT_FILE`/`SSL_CERT_DIR`, else
certifi). Unlike aiohttp's `trust_env`, it does not read `~/.netrc` on every request.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self

import aiohttp
import httpx2
import orjson
from openai import NotGiven, Omit
from openai.types.chat import ChatCompletion
from pydantic_ai.profiles import ModelProfile, merge_profile
from pydantic_ai.providers import Provider
from pydantic_ai.providers.openai_compatible import OpenAICompatibleProvider

from proxy.loop_lag import LoopLag
from proxy.upstream._errors import TRANSPORT_ERRORS, connection_error, http_error
from proxy.upstream._stream import ChunkStream

_OMITTED = (Omit, NotGiven)
_NOT_SENT = frozenset({"extra_headers", "extra_body", "extra_query", "timeout"})


def _env_proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (as httpx reads it), or None."""
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy


def _dumps(body: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # orjson.JSONEncodeError: e.g. a lone surrogate; json escapes it
        return json.dumps(body).encode()


class _ChatCompletionsClient:
    """What `OpenAIChatModel` uses of `AsyncOpenAI`: `base_url`, `with_options`, `chat.completions.create`."""

    def __init__(self, provider: LeanOpenAIProvider) -> None:
        self._provider = provider
        self._client = provider  # read by pydantic-ai's `with_max_retries`, handed back to `with_options`
        self.chat = self
        self.completions = self

    @property
    def base_url(self) -> str:
        return self._provider.base_url

    def with_options(self, **_: Any) -> Self:
        return self  # only `max_retries` comes through here, and this client never retries

    async def create(self, **params: Any) -> ChunkStream | ChatCompletion | str:
        return await self._provider.create_chat_completion(params)


class LeanOpenAIProvider(Provider[Any]):
    """An OpenAI-compatible upstream for `LeanOpenAIChatModel`; `aclose()` closes its connections.

    Its aiohttp session (one connection pool, `max_connections=0`: unlimited) is created on first use in the
    running event loop, and again if it is used from another loop later. `api_key` is sent as
    `Authorization: Bearer <key>` (a placeholder without one, as `OpenAICompatibleProvider` does);
    `trace_configs` are aiohttp's connection and request hooks (e.g. for metrics); with `lag`, the time
    the event loop lagged does not count against the connect timeout."""

    def __init__(
        self,
        name: str,
        *,
        base_url: str,
        api_key: str | None = None,
        connect_timeout: float | None = 10.0,
        max_connections: int = 0,
        keepalive_timeout: float = 15.0,
        profile: ModelProfile | Callable[[str], ModelProfile | None] | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
        lag: LoopLag | None = None,
    ) -> None:
        self._name = name
        self._base_url = base_url.rstrip("/") + "/"  # as the openai SDK normalises it
        self._url = self._base_url + "chat/completions"
        self._headers = {
            "Authorization": f"Bearer {api_key or 'api-key-not-set'}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._connect_timeout = connect_timeout
        self._max_connections = max_connections
        self._keepalive_timeout = keepalive_timeout
        self._profile_override = profile
        self._trace_configs = list(trace_configs)
        self._lag = lag
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._proxy: str | None = None
        self._client = _ChatCompletionsClient(self)

    @property
    def name(self) -> str:
        return self._name

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def client(self) -> Any:
        return self._client

    @staticmethod
    def model_profile(model_name: str) -> ModelProfile | None:
        """The profile `OpenAICompatibleProvider` gives the model, before `profile=` applies."""
        return OpenAICompatibleProvider.model_profile(model_name)

    def _configured_model_profile(self, model_name: str) -> ModelProfile | None:
        override = self._profile_override
        if callable(override):
            return override(model_name)
        default = self.model_profile(model_name)
        return default if override is None else merge_profile(default, override)

    def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is None or session.closed or self._session_loop is not loop:
            tls = httpx2.create_ssl_context() if self._url.startswith("https:") else None
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                keepalive_timeout=self._keepalive_timeout,
                ssl=tls if tls is not None else True,
            )
            self._proxy = _env_proxy(self._url)
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout),
                headers=self._headers,
                trace_configs=self._trace_configs or None,
            )
            self._session, self._session_loop = session, loop
        return session

    def _request_timeout(self, timeout: object) -> aiohttp.ClientTimeout | None:
        """The `timeout` model setting (seconds or an httpx2.Timeout) for aiohttp; None: the default."""
        if isinstance(timeout, int | float):
            return aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        if isinstance(timeout, httpx2.Timeout):
            connect = timeout.connect if timeout.connect is not None else self._connect_timeout
            return aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=timeout.read)
        return None

    async def create_chat_completion(self, params: dict[str, Any]) -> ChunkStream | ChatCompletion | str:
        """POST `params` (the SDK's `chat.completions.create` arguments); raise what pydantic-ai would."""
        model_name = str(params.get("model"))
        body = {k: v for k, v in params.items() if k not in _NOT_SENT and not isinstance(v, _OMITTED)}
        extra_body = params.get("extra_body")
        if isinstance(extra_body, Mapping):
            body.update(extra_body)
        extra_headers = params.get("extra_headers")
        headers = (
            {k: v for k, v in extra_headers.items() if isinstance(v, str)}
            if isinstance(extra_headers, Mapping)
            else None
        )
        timeout = self._request_timeout(params.get("timeout"))
        try:
            response = await self._post(_dumps(body), headers, timeout)
        except TRANSPORT_ERRORS as exc:
            raise connection_error(model_name, exc, "read") from exc
        if response.status >= 400:
            try:
                raw = await response.read()
            except TRANSPORT_ERRORS:
                raw = b""
            finally:
                response.release()
            raise http_error(model_name, self.model_id_namespace, response.status, raw, response.headers)
        if body.get("stream") is True:
            return ChunkStream(response, model_name)
        return await self._read_completion(response, model_name)

    async def _post(
        self, data: bytes, headers: dict[str, str] | None, timeout: aiohttp.ClientTimeout | None
    ) -> aiohttp.ClientResponse:
        """POST; when the connect timeout ran out while our own event loop lagged (the connection
        was made but we ran too late to see it; nothing was sent), connect again, allowing for the
        lag the last try saw. Only the time the upstream had counts against the connect timeout."""
        session = self._get_session()
        options: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        connect_s = (timeout.sock_connect if timeout is not None else None) or self._connect_timeout
        loop = asyncio.get_running_loop()
        while True:
            began, mark = loop.time(), self._lag.mark() if self._lag is not None else 0.0
            try:
                return await session.post(
                    self._url, data=data, headers=headers, proxy=self._proxy, allow_redirects=False, **options
                )
            except aiohttp.ConnectionTimeoutError:
                if self._lag is None or connect_s is None:
                    raise
                lagged = self._lag.since(mark)
                connect_s -= loop.time() - began - lagged
                if connect_s <= 0:
                    raise
                read_s = timeout.sock_read if timeout is not None else None
                options["timeout"] = aiohttp.ClientTimeout(
                    total=None, sock_connect=connect_s + lagged, sock_read=read_s
                )

    async def _read_completion(
        self, response: aiohttp.ClientResponse, model_name: str
    ) -> ChatCompletion | str:
        try:
            raw = await response.read()
        except TRANSPORT_ERRORS as exc:
            raise connection_error(model_name, exc, "read") from exc
        finally:
            response.release()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            if response.content_type.endswith("json"):
                raise  # pydantic-ai turns it into ModelAPIError("Failed to decode response as JSON ...")
            return raw.decode("utf-8", errors="replace")  # the SDK returns a non-JSON body as text
        if not isinstance(data, dict):
            return raw.decode("utf-8", errors="replace")
        return ChatCompletion.construct(**data)

    async def aclose(self) -> None:
        """Close the connections (the provider can still be used afterwards: it opens new ones)."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()
