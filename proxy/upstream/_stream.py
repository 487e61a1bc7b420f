"""`ChunkStream`: one streamed Chat Completions HTTP response -> its chunks, as plain dicts.

Per chunk it costs one `orjson.loads` and a dict lookup for `error`. It stops at `data: [DONE]` or at
the end of the body, raises the pydantic-ai exception for an in-stream error, a chunk that is not JSON
(`ModelAPIError` caused by a `json.JSONDecodeError`) or a broken connection
(`ModelConnectionError(phase="read")`), and closes the HTTP response on every way out, so that a
consumer that stops early (cancellation) closes the upstream connection at once.
"""

from __future__ import annotations

from collections import deque
from types import TracebackType
from typing import Any, NoReturn, Self

import aiohttp
import orjson

from proxy.upstream._errors import TRANSPORT_ERRORS, connection_error, decode_error, in_stream_error
from proxy.upstream._sse import SSEDecoder

_DONE = b"[DONE]"


def _chunk(payload: bytes) -> dict[str, Any] | None:
    """The chunk `payload` holds; None if it is not JSON, not an object, or an in-stream error."""
    try:
        chunk = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return chunk if type(chunk) is dict and not chunk.get("error") else None


class ChunkStream:
    """Async iterator of the chunk dicts of `response`; also an async context manager that closes it."""

    __slots__ = ("_content", "_decoder", "_done", "_model_name", "_pending", "_response")

    def __init__(self, response: aiohttp.ClientResponse, model_name: str) -> None:
        self._response = response
        self._content = response.content
        self._model_name = model_name
        self._decoder = SSEDecoder()
        self._pending: deque[bytes] = deque()
        self._done = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> dict[str, Any]:
        pending = self._pending
        while not pending:
            if self._done:
                raise StopAsyncIteration
            try:
                data = await self._content.readany()
            except TRANSPORT_ERRORS as exc:
                self.close()
                raise connection_error(self._model_name, exc, "read") from exc
            if not data:  # the end of the body: a stream that ended without `[DONE]`
                self._finish()
                raise StopAsyncIteration
            pending.extend(self._decoder.feed(data))
        payload = pending.popleft()
        if payload.startswith(_DONE):
            self._finish()
            raise StopAsyncIteration
        chunk = _chunk(payload)
        if chunk is None:
            self.close()
            self._raise_for(payload)
        return chunk

    def next_ready(self) -> dict[str, Any] | None:
        """The next chunk if it was already read, without waiting; None if none was, at the end, or
        if the next one is an error, which stays for `__anext__` to raise."""
        pending = self._pending
        if not pending:
            return None
        if pending[0].startswith(_DONE):
            self._finish()
            return None
        chunk = _chunk(pending[0])
        if chunk is not None:
            pending.popleft()
        return chunk

    def _raise_for(self, payload: bytes) -> NoReturn:
        """The pydantic-ai exception for a payload that holds no chunk (`_chunk` gave None)."""
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise decode_error(self._model_name, exc) from exc
        if type(chunk) is dict:
            raise in_stream_error(chunk.get("model") or self._model_name, chunk)
        raise decode_error(self._model_name, ValueError(f"expected a JSON object, got {payload[:100]!r}"))

    def _finish(self) -> None:
        # After `[DONE]` or the end of the body; release() keeps the connection only if the body was complete.
        self._done = True
        self._pending.clear()
        self._response.release()

    def close(self) -> None:
        """Stop, and close the HTTP connection unless the response already ended."""
        if not self._done:
            self._done = True
            self._pending.clear()
        self._response.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
