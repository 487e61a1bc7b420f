"""OpenAI's Responses API (docs/protocol.md): `POST /v1/responses`, `GET` and `DELETE
/v1/responses/{id}`, `model` = agent name or alias.

`stream: true` answers the semantic events (`response.created`, `response.output_item.added`,
`response.output_text.delta`, ..., `response.completed`), each with its `sequence_number`, and
heartbeats as SSE comments. As on the chat completions endpoint, the engine runs these streams with
`mid_stream = "fail"`: retries are invisible before the first text, and a failure ends the stream
with `response.failed`, never `response.completed` with partial text. Calls of the client's function
tools come back as `function_call` output items; their results come in the next request's `input`.
The client's `instructions` and `system`/`developer` messages are its system prompt, added to the
agent's instructions (DESIGN 13).
With `store` (OpenAI's default) the conversation after the response is kept in the conversation
store under the response's id, owned by the caller's key, for `previous_response_id`. Errors use
OpenAI's shape (`proxy/transports/openai/errors.py`).
"""

from proxy.transports.responses.handler import ResponsesTransport

__all__ = ["ResponsesTransport"]
