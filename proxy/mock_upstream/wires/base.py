"""What a wire is: how the mock reads one provider's request and writes its answer, errors and faults.

The shared handler (`exchange.py`) owns timing, fault selection and stats; a wire only translates.
A request is read into the chat-completions shape `plan_answer` reads (`messages` with roles
`system`/`user`/`assistant`/`tool`, `tools` as `{"function": {"name", "parameters"}}`,
`response_format`), so every wire answers the same text, tool calls and JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from aiohttp import web

from proxy.mock_upstream.answer import Answer
from proxy.mock_upstream.behaviour import MockBehaviour
from proxy.mock_upstream.faults import add_retry_after


class WireError(ValueError):
    """The request does not have what the mock needs (400); `param` names the field."""

    def __init__(self, message: str, param: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True, slots=True)
class Call:
    """One request the mock answers: the body as sent, its behaviour and the planned answer."""

    model: str
    body: Mapping[str, Any]
    behaviour: MockBehaviour
    answer: Answer
    number: int  # the mock's request number, the tail of every id it sends
    created: int


class StreamEncoder(Protocol):
    """The bytes of one streamed answer; the handler decides when each part is written."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    def start(self) -> bytes:
        """Sent right after the headers, before `ttfc_ms` (may be empty)."""

    def pieces(self) -> list[bytes]:
        """One write per content piece."""

    def finish(self) -> bytes:
        """Everything after the last piece of a good answer."""

    def error(self) -> bytes:
        """The in-stream error (`instream_error`), the last bytes of the stream."""

    def malformed(self) -> bytes:
        """An event a client cannot parse (`malformed`)."""

    def unfinished(self) -> bytes:
        """The end of a stream without its finish (`no_finish`)."""


class Wire(Protocol):
    """One provider's API, served at `paths`."""

    @property
    def paths(self) -> tuple[str, ...]: ...

    @property
    def malformed_body(self) -> bytes:
        """A non-streaming `malformed` answer: a 200 whose JSON is cut short."""

    def model(self, request: web.Request, body: Any) -> object:
        """The model string (a non-empty `str`, else the request is refused)."""

    def prompt(self, body: Any) -> Mapping[str, Any]:
        """The request in the chat-completions shape; raises `WireError`."""

    def streaming(self, request: web.Request, body: Mapping[str, Any]) -> bool: ...

    def bad_request(self, message: str, param: str | None, code: str | None = None) -> web.Response: ...

    def http_fault(self, fault: str, behaviour: MockBehaviour) -> web.Response: ...

    def failure(self) -> web.Response:
        """A non-streaming `instream_error`: the provider's 500."""

    def stream(self, call: Call) -> StreamEncoder: ...

    def complete(self, call: Call, finished: bool) -> web.Response:
        """A non-streaming answer; `finished` False leaves out its finish reason (`no_finish`)."""


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    body = orjson.dumps(data)
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def json_value(text: str) -> Any:
    """Tool arguments as a JSON value for wires that send objects; invalid JSON stays a string
    (`json`/`tool_args` may be invalid on purpose, and the client should notice)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def sse(event: str, data: Any) -> bytes:
    """A named SSE event."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def chat_tool(name: object, parameters: object) -> dict[str, Any]:
    """A tool offered, in the chat-completions shape `plan_answer` reads."""
    return {"type": "function", "function": {"name": name, "parameters": parameters or {}}}


def schema_format(schema: object) -> dict[str, Any]:
    """A requested JSON schema, as a chat-completions `response_format`."""
    return {"type": "json_schema", "json_schema": {"schema": schema if isinstance(schema, Mapping) else {}}}


def body_model(body: Any) -> object:
    """The `model` of a JSON body (chat-completions, Anthropic, Responses)."""
    return body.get("model") if isinstance(body, dict) else None


class TableErrors:
    """The error answers of a wire whose HTTP faults are a table of `(status, type, message)`."""

    faults: Mapping[str, tuple[int, str, str]]
    invalid: str  # the error type of a 400
    internal: str  # the error type of a 500

    def error_response(self, status: int, error_type: str, message: str) -> web.Response:
        raise NotImplementedError

    def bad_request(self, message: str, param: str | None, code: str | None = None) -> web.Response:
        return self.error_response(400, self.invalid, f"{param}: {message}" if param else message)

    def http_fault(self, fault: str, behaviour: MockBehaviour) -> web.Response:
        return add_retry_after(self.error_response(*self.faults[fault]), behaviour)

    def failure(self) -> web.Response:
        return self.error_response(500, self.internal, "mock: injected error")
