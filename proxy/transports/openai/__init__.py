"""OpenAI-compatible Chat Completions (docs/protocol.md): `POST /v1/chat/completions`, `model` = agent name.

`stream: true` answers `chat.completion.chunk` SSE ending in `data: [DONE]`, with heartbeats as SSE
comments (`: keepalive`) that OpenAI clients skip. The engine runs these streams with
`mid_stream = "fail"`, so retries are invisible before the first content chunk and a failure after it
ends the stream with one in-stream `{"error": ...}` chunk and no `[DONE]`: clients raise instead of
accepting a truncated answer. `stream: false` drains the same stream and answers one
`chat.completion`. Every error uses OpenAI's shape `{"error": {"message", "type", "param", "code"}}`;
this handler renders them itself, never the app's middleware.
"""

from proxy.transports.openai.handler import OpenAITransport

__all__ = ["OpenAITransport"]
