"""`GET /openapi.json`: an OpenAPI 3.1 description of every HTTP endpoint, its bodies, its errors
and its security scheme, for fuzzers and client generators.

The operations are a table keyed by (method, route) as the app registers them; a test keeps the
table and the app's routes equal, so an endpoint added without a description fails it.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from aiohttp import web

from proxy.auth.middleware import PUBLIC_PATHS, TOKEN_ROUTES
from proxy.observability.metrics import package_version

JSON: Final = "application/json"
SSE: Final = "text/event-stream"

_ERROR = {"$ref": "#/components/schemas/Error"}
_OPENAI_ERROR = {"$ref": "#/components/schemas/OpenAIError"}

_CONTENT = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]}
_MESSAGES_FIELDS: Final[dict[str, Any]] = {
    "model": {"type": "string", "description": "An agent's name or alias (`claude-sonnet-*`)"},
    "messages": {
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "object",
            "required": ["role", "content"],
            "properties": {"role": {"enum": ["user", "assistant", "system"]}, "content": _CONTENT},
        },
    },
    "system": _CONTENT,
    "tools": {"type": "array", "items": {"type": "object"}},
    "tool_choice": {"type": "object"},
}
"""The fields of Anthropic's Messages body that `count_tokens` takes too."""

SCHEMAS: Final[dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "OpenAIError": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "code"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": {"type": ["string", "null"]},
                    "code": {"type": ["string", "null"]},
                },
            }
        },
    },
    "UIRequest": {
        "type": "object",
        "description": "The Vercel AI SDK's `{id, messages}`, or AG-UI's `RunAgentInput`.",
        "required": ["messages"],
        "properties": {"messages": {"type": "array", "items": {"type": "object"}}},
    },
    "StreamRequest": {
        "type": "object",
        "required": ["prompt"],
        "properties": {
            "prompt": {"type": "string", "minLength": 1},
            "conversation_id": {"type": "string"},
            "metadata": {"type": "object"},
        },
    },
    "Usage": {
        "type": "object",
        "properties": {
            "input_tokens": {"type": "integer"},
            "output_tokens": {"type": "integer"},
            "requests": {"type": "integer"},
        },
    },
    "RunAnswer": {
        "type": "object",
        "description": "The fields of the stream's `end` event, plus `error` when it failed.",
        "required": ["stream_id", "finish_reason", "usage", "attempts"],
        "properties": {
            "stream_id": {"type": "string"},
            "finish_reason": {"enum": ["stop", "length", "error", "timeout", "cancelled", "shutdown"]},
            "text": {"type": ["string", "null"]},
            "output": {},
            "usage": {"$ref": "#/components/schemas/Usage"},
            "attempts": {"type": "integer"},
            "ttft_s": {"type": ["number", "null"]},
            "duration_s": {"type": "number"},
            "conversation_id": {"type": ["string", "null"]},
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "retryable": {"type": "boolean"},
                },
            },
        },
    },
    "ChatCompletionRequest": {
        "type": "object",
        "required": ["model", "messages"],
        "description": "OpenAI's Chat Completions body, `model` naming an agent; unknown fields are "
        "ignored, `functions` and `function_call` (replaced by `tools`) refused.",
        "properties": {
            "model": {"type": "string"},
            "messages": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["role"],
                    "description": "`content` may be null only beside an assistant's `tool_calls`; a `tool` "
                    "message answers the `id` of an earlier tool call.",
                    "properties": {
                        "role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
                        "content": {
                            "oneOf": [
                                {"type": "string"},
                                {"type": "null"},
                                {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["type", "text"],
                                        "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
                                    },
                                },
                            ]
                        },
                        "tool_calls": {"type": "array", "items": {"$ref": "#/components/schemas/ToolCall"}},
                        "tool_call_id": {"type": "string"},
                    },
                },
            },
            "tools": {"type": "array", "items": {"$ref": "#/components/schemas/Tool"}},
            "tool_choice": {
                "oneOf": [
                    {"enum": ["none", "auto", "required"]},
                    {
                        "type": "object",
                        "required": ["type", "function"],
                        "properties": {
                            "type": {"const": "function"},
                            "function": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": {"type": "string"}},
                            },
                        },
                    },
                ]
            },
            "parallel_tool_calls": {"type": "boolean"},
            "response_format": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["type"],
                        "properties": {"type": {"enum": ["text", "json_object"]}},
                    },
                    {
                        "type": "object",
                        "required": ["type", "json_schema"],
                        "properties": {
                            "type": {"const": "json_schema"},
                            "json_schema": {
                                "type": "object",
                                "required": ["name", "schema"],
                                "properties": {
                                    "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                                    "description": {"type": "string"},
                                    "schema": {
                                        "type": "object",
                                        "description": 'A JSON Schema of `"type": "object"`',
                                    },
                                    "strict": {"type": "boolean"},
                                },
                            },
                        },
                    },
                ]
            },
            "stream": {"type": "boolean"},
            "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
            "max_tokens": {"type": "integer", "minimum": 1},
            "max_completion_tokens": {"type": "integer", "minimum": 1},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2},
            "top_p": {"type": "number", "minimum": 0, "maximum": 1},
            "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "user": {"type": "string"},
            "n": {"const": 1},
        },
    },
    "Tool": {
        "type": "object",
        "required": ["type", "function"],
        "description": "A function of the client's: the model may call it; the call goes to the client.",
        "properties": {
            "type": {"const": "function"},
            "function": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                    "description": {"type": "string"},
                    "parameters": {"type": "object", "description": "A JSON Schema of the arguments"},
                    "strict": {"type": "boolean"},
                },
            },
        },
    },
    "ToolCall": {
        "type": "object",
        "required": ["id", "type", "function"],
        "properties": {
            "id": {"type": "string", "minLength": 1},
            "type": {"const": "function"},
            "function": {
                "type": "object",
                "required": ["name", "arguments"],
                "properties": {"name": {"type": "string", "minLength": 1}, "arguments": {"type": "string"}},
            },
        },
    },
    "ResponsesRequest": {
        "type": "object",
        "required": ["model", "input"],
        "description": "OpenAI's Responses API body; docs/protocol.md says what is taken and ignored.",
        "properties": {
            "model": {"type": "string", "description": "An agent's name or alias"},
            "input": {
                "oneOf": [
                    {"type": "string"},
                    {
                        "type": "array",
                        "minItems": 1,
                        "description": "Messages, `function_call`, `function_call_output`, reasoning items",
                        "items": {"type": "object"},
                    },
                ]
            },
            "instructions": {"type": ["string", "null"]},
            "previous_response_id": {"type": ["string", "null"]},
            "store": {"type": "boolean"},
            "stream": {"type": "boolean"},
            "tools": {
                "type": "array",
                "description": "Function tools go to the model; tools of other types are not offered",
                "items": {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}},
            },
            "tool_choice": {
                "oneOf": [
                    {"enum": ["none", "auto", "required"]},
                    {
                        "type": "object",
                        "required": ["type", "name"],
                        "properties": {"type": {"const": "function"}, "name": {"type": "string"}},
                    },
                ]
            },
            "parallel_tool_calls": {"type": "boolean"},
            "max_output_tokens": {"type": "integer", "minimum": 1},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2},
            "top_p": {"type": "number", "minimum": 0, "maximum": 1},
            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
            "text": {"type": "object", "properties": {"format": {"type": "object"}}},
        },
    },
    "Response": {
        "type": "object",
        "required": ["id", "object", "status", "output"],
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "response"},
            "status": {"enum": ["completed", "incomplete", "failed", "in_progress"]},
            "output": {"type": "array", "items": {"type": "object"}},
            "usage": {"type": ["object", "null"]},
        },
    },
    "AnthropicError": {
        "type": "object",
        "required": ["type", "error"],
        "properties": {
            "type": {"const": "error"},
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "MessagesRequest": {
        "type": "object",
        "required": ["model", "messages", "max_tokens"],
        "description": "Anthropic's Messages body; docs/protocol.md says what is taken and ignored.",
        "properties": {
            **_MESSAGES_FIELDS,
            "max_tokens": {"type": "integer", "minimum": 1},
            "stream": {"type": "boolean"},
            "stop_sequences": {"type": "array", "items": {"type": "string"}},
            "temperature": {"type": "number", "minimum": 0, "maximum": 1},
            "top_p": {"type": "number", "minimum": 0, "maximum": 1},
            "thinking": {"type": "object"},
            "metadata": {"type": "object"},
        },
    },
    "CountTokensRequest": {
        "type": "object",
        "required": ["model", "messages"],
        "properties": _MESSAGES_FIELDS,
    },
    "Message": {
        "type": "object",
        "required": ["id", "type", "role", "model", "content", "stop_reason", "usage"],
        "properties": {
            "id": {"type": "string"},
            "type": {"const": "message"},
            "role": {"const": "assistant"},
            "model": {"type": "string"},
            "content": {"type": "array", "items": {"type": "object"}},
            "stop_reason": {"enum": ["end_turn", "max_tokens", "tool_use"]},
            "stop_sequence": {"type": "null"},
            "usage": {"type": "object"},
        },
    },
    "TokenCount": {
        "type": "object",
        "required": ["input_tokens"],
        "properties": {"input_tokens": {"type": "integer", "minimum": 1}},
    },
    "TokenRequest": {
        "type": "object",
        "properties": {
            "agent": {"type": "string", "description": "Bind the token to this agent."},
            "ttl_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
        },
    },
    "Token": {
        "type": "object",
        "required": ["token", "expires_at"],
        "properties": {
            "token": {"type": "string"},
            "expires_at": {"type": "integer", "description": "Unix seconds."},
        },
    },
    "ModelList": {
        "type": "object",
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}}}},
        },
    },
    "AgentList": {"type": "object", "properties": {"agents": {"type": "array", "items": {"type": "object"}}}},
    "Status": {"type": "object", "properties": {"status": {"type": "string"}}},
}

_AGENT = {"name": "agent", "in": "path", "required": True, "schema": {"type": "string"}}
_RESPONSE_ID = {"name": "response_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _errors(*statuses: int, openai: bool = False) -> dict[str, Any]:
    schema = _OPENAI_ERROR if openai else _ERROR
    out: dict[str, Any] = {}
    for status in statuses:
        response: dict[str, Any] = {"description": _ERROR_TEXT[status], "content": {JSON: {"schema": schema}}}
        if status == 401:
            response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        if status in (429, 503):
            response["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
        out[str(status)] = response
    return out


_ERROR_TEXT: Final = {
    400: "Bad request (invalid JSON or body)",
    401: "No valid key or token (`unauthorized`)",
    403: "The key may not use this agent (`forbidden_agent`)",
    404: "Unknown agent, conversation or stream",
    413: "Body or prompt too large",
    415: "Not application/json",
    422: "Invalid prompt or field",
    429: "Over a limit of the key (`rate_limited`)",
    503: "Overloaded, draining, or the shared state is unavailable",
}
_STREAM_ERRORS: Final = (400, 401, 403, 404, 413, 415, 422, 429, 503)
_ANTHROPIC_ERROR_TEXT: Final = {
    400: "Bad request (`invalid_request_error`)",
    401: "No valid key (`authentication_error`)",
    403: "The key may not use this agent (`permission_error`)",
    404: "Unknown model (`not_found_error`)",
    413: "Body or prompt too large (`request_too_large`)",
    429: "Over a limit of the key (`rate_limit_error`)",
    500: "The upstream failed (`api_error`)",
    504: "The upstream timed out (`timeout_error`)",
    529: "The proxy or the upstream is overloaded or draining (`overloaded_error`)",
}


def _anthropic_errors(*statuses: int) -> dict[str, Any]:
    """Anthropic's error shape; 429 and 529 say when to retry."""
    out: dict[str, Any] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "description": _ANTHROPIC_ERROR_TEXT[status],
            "content": {JSON: {"schema": _ref("AnthropicError")}},
        }
        if status in (429, 529):
            response["headers"] = {"retry-after": {"schema": {"type": "integer"}}}
        out[str(status)] = response
    return out


def _body(schema: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _ok(description: str, media: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"200": {"description": description, "content": {media: {"schema": schema or {"type": "string"}}}}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


OPERATIONS: Final[dict[tuple[str, str], dict[str, Any]]] = {
    ("POST", "/v1/agents/{agent}/stream"): {
        "summary": "Stream an agent's answer as Server-Sent Events",
        "parameters": [_AGENT],
        "requestBody": _body("StreamRequest"),
        "responses": {**_ok("start, delta, …, end events", SSE), **_errors(*_STREAM_ERRORS)},
    },
    ("GET", "/v1/agents/{agent}/stream"): {
        "summary": "The same stream for a browser EventSource",
        "parameters": [
            _AGENT,
            {"name": "prompt", "in": "query", "required": True, "schema": {"type": "string"}},
            {"name": "conversation_id", "in": "query", "schema": {"type": "string"}},
        ],
        "responses": {**_ok("start, delta, …, end events", SSE), **_errors(*_STREAM_ERRORS)},
    },
    ("GET", "/v1/ws"): {
        "summary": "WebSocket: many prompts per socket (JSON frames, docs/protocol.md 3.3)",
        "responses": {"101": {"description": "Switching Protocols"}, **_errors(401, 503)},
    },
    ("POST", "/v1/agents/{agent}/run"): {
        "summary": "Run an agent without streaming",
        "parameters": [_AGENT],
        "requestBody": _body("StreamRequest"),
        "responses": {
            **_ok("The end event's fields", JSON, _ref("RunAnswer")),
            "502": {"description": "The upstream failed", "content": {JSON: {"schema": _ref("RunAnswer")}}},
            "504": {
                "description": "The upstream timed out",
                "content": {JSON: {"schema": _ref("RunAnswer")}},
            },
            **_errors(*_STREAM_ERRORS),
        },
    },
    ("POST", "/v1/chat/completions"): {
        "summary": "OpenAI-compatible Chat Completions (`model` = agent)",
        "requestBody": _body("ChatCompletionRequest"),
        "responses": {
            "200": {
                "description": "`chat.completion`, or `chat.completion.chunk` events ending in `[DONE]`",
                "content": {JSON: {"schema": {"type": "object"}}, SSE: {"schema": {"type": "string"}}},
            },
            **_errors(400, 401, 403, 404, 413, 415, 429, 503, openai=True),
        },
    },
    ("POST", "/v1/responses"): {
        "summary": "OpenAI's Responses API (`model` = agent or alias)",
        "requestBody": _body("ResponsesRequest"),
        "responses": {
            "200": {
                "description": "A `response` object, or its semantic events ending in `response.completed`",
                "content": {JSON: {"schema": _ref("Response")}, SSE: {"schema": {"type": "string"}}},
            },
            **_errors(400, 401, 403, 404, 413, 415, 429, 503, openai=True),
        },
    },
    ("GET", "/v1/responses/{response_id}"): {
        "summary": "A stored response of the caller's",
        "parameters": [_RESPONSE_ID],
        "responses": {**_ok("The response", JSON, _ref("Response")), **_errors(401, 404, 503, openai=True)},
    },
    ("DELETE", "/v1/responses/{response_id}"): {
        "summary": "Delete a stored response of the caller's",
        "parameters": [_RESPONSE_ID],
        "responses": {**_ok("Deleted", JSON, {"type": "object"}), **_errors(401, 404, 503, openai=True)},
    },
    ("POST", "/v1/messages"): {
        "summary": "Anthropic's Messages API (`model` = agent or alias) for Claude Code and Anthropic's SDKs",
        "requestBody": _body("MessagesRequest"),
        "responses": {
            "200": {
                "description": "A `message`, or its events from `message_start` to `message_stop`",
                "content": {JSON: {"schema": _ref("Message")}, SSE: {"schema": {"type": "string"}}},
            },
            **_anthropic_errors(400, 401, 403, 404, 413, 429, 500, 504, 529),
        },
    },
    ("POST", "/v1/messages/count_tokens"): {
        "summary": "The input tokens of a Messages request (an estimate: docs/protocol.md)",
        "requestBody": _body("CountTokensRequest"),
        "responses": {
            **_ok("The count", JSON, _ref("TokenCount")),
            **_anthropic_errors(400, 401, 403, 404, 413),
        },
    },
    ("GET", "/v1/models"): {
        "summary": "The caller's agents as an OpenAI model list",
        "responses": {**_ok("Models", JSON, _ref("ModelList")), **_errors(401, openai=True)},
    },
    ("GET", "/v1/agents"): {
        "summary": "The caller's agents with models, circuits, retry and timeout policies",
        "responses": {**_ok("Agents", JSON, _ref("AgentList")), **_errors(401)},
    },
    ("POST", "/v1/tokens"): {
        "summary": "Trade a key for a short-lived token (for browsers' URLs)",
        "requestBody": _body("TokenRequest", required=False),
        "responses": {**_ok("A token", JSON, _ref("Token")), **_errors(401, 403, 404, 415, 422)},
    },
    ("GET", "/v1/streams/{stream_id}"): {
        "summary": "Resume a stream: its events after Last-Event-ID or `after`, then live to its end",
        "parameters": [
            {"name": "stream_id", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": -1}},
            {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
        ],
        "responses": {**_ok("The stream's remaining events", SSE), **_errors(400, 401, 404, 503)},
    },
    ("POST", "/v1/agents/{agent}/vercel-ai"): {
        "summary": "The Vercel AI SDK's UI message stream (`{id, messages}` in)",
        "parameters": [_AGENT],
        "requestBody": _body("UIRequest"),
        "responses": {**_ok("UI message stream parts", SSE), **_errors(*_STREAM_ERRORS)},
    },
    ("POST", "/v1/agents/{agent}/ag-ui"): {
        "summary": "AG-UI (`RunAgentInput` in, AG-UI events out)",
        "parameters": [_AGENT],
        "requestBody": _body("UIRequest"),
        "responses": {**_ok("AG-UI events", SSE), **_errors(*_STREAM_ERRORS)},
    },
    ("GET", "/"): {"summary": "Redirects to the playground", "responses": {"302": {"description": "Found"}}},
    ("GET", "/playground"): {"summary": "The browser playground", "responses": _ok("The page", "text/html")},
    ("GET", "/playground/{name}"): {
        "summary": "The playground's static files",
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {**_ok("A file", "application/octet-stream"), "404": {"description": "No such file"}},
    },
    ("GET", "/healthz"): {"summary": "Liveness", "responses": _ok("Serving", JSON, _ref("Status"))},
    ("GET", "/readyz"): {
        "summary": "Readiness",
        "responses": {
            **_ok("Ready", JSON, _ref("Status")),
            "503": {"description": "Draining", "content": {JSON: {"schema": _ref("Status")}}},
        },
    },
    ("GET", "/metrics"): {"summary": "Prometheus exposition", "responses": _ok("Metrics", "text/plain")},
    ("GET", "/openapi.json"): {
        "summary": "This document",
        "responses": _ok("OpenAPI 3.1", JSON, {"type": "object"}),
    },
}

SECURITY_SCHEMES: Final = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "A key (or, where accepted, a token)."},
    "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    "token": {
        "type": "apiKey",
        "in": "query",
        "name": "token",
        "description": "A short-lived token from POST /v1/tokens; never a key.",
    },
}


def build_document(routes: list[tuple[str, str]], auth: bool) -> dict[str, Any]:
    """The document for the app's `routes` ((method, path) pairs); with `auth`, the security
    requirements of `[auth] mode = "keys"`."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path in routes:
        operation = dict(OPERATIONS[(method, path)])
        if auth:
            if path in PUBLIC_PATHS:
                operation["security"] = []
            elif (method, path) in TOKEN_ROUTES:
                operation["security"] = [{"bearer": []}, {"apiKey": []}, {"token": []}]
        paths.setdefault(path, {})[method.lower()] = operation
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "agent-proxy", "version": package_version()},
        "paths": paths,
        "components": {"schemas": SCHEMAS, "securitySchemes": SECURITY_SCHEMES},
    }
    if auth:
        document["security"] = [{"bearer": []}, {"apiKey": []}]
    return document


def app_routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves (HEAD twins of GET routes left out)."""
    return sorted(
        {
            (route.method, route.resource.canonical)
            for route in app.router.routes()
            if route.resource is not None and route.method not in ("HEAD", "OPTIONS", "*")
        }
    )


def install_openapi(app: web.Application, auth: bool) -> None:
    cache: list[bytes] = []

    async def openapi(request: web.Request) -> web.Response:
        if not cache:  # built on first use: every route is registered by then
            cache.append(orjson.dumps(build_document(app_routes(request.app), auth)))
        return web.Response(body=cache[0], content_type=JSON)

    app.router.add_get("/openapi.json", openapi)
