"""Wire clients, one per target (SSE events, WebSocket frames, OpenAI chunks, Responses events,
Anthropic Messages events), that time every event."""

from __future__ import annotations

import aiohttp

from proxy.loadtest.clients.anthropic import AnthropicClient
from proxy.loadtest.clients.base import CONTENT_EVENTS, WireClient, classify, handle_event
from proxy.loadtest.clients.openai import OpenAIClient
from proxy.loadtest.clients.responses import ResponsesClient
from proxy.loadtest.clients.sse import SseClient
from proxy.loadtest.clients.ws import WsClient
from proxy.loadtest.config import LoadConfig

__all__ = [
    "CONTENT_EVENTS",
    "AnthropicClient",
    "OpenAIClient",
    "ResponsesClient",
    "SseClient",
    "WireClient",
    "WsClient",
    "classify",
    "handle_event",
    "make_client",
]


def make_client(config: LoadConfig, session: aiohttp.ClientSession) -> WireClient:
    if config.target == "sse":
        return SseClient(config, session)
    if config.target == "ws":
        return WsClient(config, session)
    if config.target == "responses":
        return ResponsesClient(config, session)
    if config.target == "anthropic":
        return AnthropicClient(config, session)
    return OpenAIClient(config, session)
