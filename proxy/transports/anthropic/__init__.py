"""Anthropic's Messages API (docs/protocol.md): `POST /v1/messages` and
`/v1/messages/count_tokens`, `model` = agent name or alias, for Claude Code and Anthropic's SDKs.

`stream: true` answers Anthropic's events (`message_start`, `content_block_*`, `message_delta`,
`message_stop`), with heartbeats as Anthropic's own `ping` event, which its clients skip. As on the
chat completions endpoint, the engine runs these streams with `mid_stream = "fail"`: retries are
invisible before the first text, and a failure after it ends the stream with an `error` event,
never a `message_stop` after partial text. Calls of the client's tools come back as `tool_use`
blocks with `stop_reason: "tool_use"`; their results come in the next request's messages. The
client's `system` (and its mid-conversation system entries) are added to the agent's instructions.
Every error uses Anthropic's shape (`errors.py`).
"""

from proxy.transports.anthropic.handler import AnthropicTransport

__all__ = ["AnthropicTransport"]
