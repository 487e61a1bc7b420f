"""aiohttp failures and upstream error answers -> the pydantic-ai exceptions `OpenAIChatModel` raises.

The categories come from pydantic-ai's own helpers (`status_error` for an HTTP status, `stream_error`
for an `{"error": ...}` event inside a stream), fed what the openai SDK would have fed them, so a
401 is a `ModelAuthenticationError`, a 400 `context_length_exceeded` a
`ModelContextWindowExceededError`, a 429 a `ModelRateLimitError` with `retry_after` read from
`retry-after-ms`/`Retry-After`, and so on. Transport failures become `ModelConnectionError` (or
`ModelTimeoutError`) with the phase the engine classifies by; the aiohttp error is the `__cause__`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson
from pydantic_ai._model_errors import stream_error
from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelConnectionError,
    ModelHTTPError,
    ModelTimeoutError,
    TransportPhase,
)
from pydantic_ai.models.openai._errors import status_error

TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, OSError)
"""What aiohttp raises for a failed connection, request or response read."""


def connection_error(model_name: str, exc: BaseException, phase: TransportPhase) -> ModelConnectionError:
    """`exc` (one of `TRANSPORT_ERRORS`) as pydantic-ai reports it; `phase` is where it happened.

    A refused or failed connect is `phase="connect"` wherever it surfaced; so is a connect timeout,
    which is a `ModelTimeoutError`. Anything else after the connection was made is `phase`."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ModelTimeoutError(model_name, f"Request timed out: {detail}", phase="connect")
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return ModelTimeoutError(model_name, f"Request timed out: {detail}", phase=phase)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ModelConnectionError(model_name, f"Connection error: {detail}", phase="connect")
    return ModelConnectionError(model_name, f"Connection error: {detail}", phase=phase)


def http_error(
    model_name: str, namespace: str, status: int, raw: bytes, headers: Mapping[str, str]
) -> ModelHTTPError:
    """The error for an HTTP status >= 400 whose body is `raw`, as the openai SDK path raises it."""
    message = f"Error code: {status}"
    text = raw.decode("utf-8", errors="replace").strip()
    body: Any = text
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    else:
        error = body.get("error", body) if isinstance(body, dict) else None
        detail = error.get("message") if isinstance(error, dict) else None
        if isinstance(detail, str) and detail:
            message += f" - {detail}"
    data = body.get("error", body) if isinstance(body, dict) else body
    code: str | None = None
    error_type: str | None = None
    if isinstance(data, dict):
        raw_code = data.get("code")
        code = str(raw_code) if raw_code is not None else None
        raw_type = data.get("type")
        error_type = raw_type if isinstance(raw_type, str) else None
    return status_error(
        model_name,
        namespace,
        status_code=status,
        body=data,
        code=code,
        error_type=error_type,
        message=message,
        headers=dict(headers),
    )


def in_stream_error(model_name: str, chunk: dict[str, Any]) -> ModelAPIError:
    """The error for a `data: {"error": ...}` event (`in_stream=True`), as the openai SDK path raises it."""
    error = chunk["error"]
    message = error.get("message") if isinstance(error, dict) else None
    if not message or not isinstance(message, str):
        message = "An error occurred during streaming"
    return stream_error(model_name, message, error)


def decode_error(model_name: str, exc: Exception) -> ModelAPIError:
    """A body or chunk that is not JSON; `exc` (a `json.JSONDecodeError`) becomes the `__cause__`."""
    return ModelAPIError(model_name=model_name, message=f"Failed to decode response as JSON: {exc}")
