"""The provider APIs the mock speaks, one module each; `WIRES` is what the app serves."""

from __future__ import annotations

from proxy.mock_upstream.wires.anthropic import AnthropicWire
from proxy.mock_upstream.wires.base import Wire
from proxy.mock_upstream.wires.bedrock import BedrockWire
from proxy.mock_upstream.wires.gemini import GeminiWire
from proxy.mock_upstream.wires.openai_chat import AzureWire, ChatWire
from proxy.mock_upstream.wires.responses import ResponsesWire

WIRES: tuple[Wire, ...] = (
    ChatWire(),
    AzureWire(),
    AnthropicWire(),
    ResponsesWire(),
    GeminiWire(),
    BedrockWire(),
)
