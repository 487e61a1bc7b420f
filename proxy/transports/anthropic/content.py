"""Anthropic's `system` and `messages` -> the engine's message list.

Blocks taken: `text`, `image` (base64 or URL), `tool_use`, `tool_result` (text and images), and a
`role: "system"` entry anywhere in `messages` (Claude Code's mid-conversation system notes, which
become instructions like `system`). `thinking` and `redacted_thinking` blocks are dropped: they are
the reasoning an Anthropic model signed for itself, which another upstream can neither check nor
use. `cache_control` is accepted everywhere and ignored. Any other block is a 400 naming it.
Claude Code's first system block, `x-anthropic-billing-header: …`, is for Anthropic's billing and
changes with every request: it is dropped too, or it would defeat the upstream's prompt cache.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

import orjson

from proxy.engine.inputs import ChatMessage, Image, Part, text_parts
from proxy.events import FunctionCall
from proxy.transports.anthropic.errors import InvalidRequest

IMAGE_TYPES: Final = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
DROPPED: Final = frozenset({"thinking", "redacted_thinking"})
BILLING_HEADER: Final = "x-anthropic-billing-header:"


def _object(value: object, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(param, "must be an object")
    return value


def _string(value: object, param: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(param, "must be a string")
    return value


def _blocks(value: object, param: str) -> list[dict[str, Any]]:
    """A content field: a string is one text block."""
    if isinstance(value, str):
        return [{"type": "text", "text": value}]
    if not isinstance(value, list):
        raise InvalidRequest(param, "must be a string or an array of content blocks")
    return [_object(block, f"{param}[{i}]") for i, block in enumerate(value)]


def _image(block: dict[str, Any], param: str) -> Image:
    source = _object(block.get("source"), f"{param}.source")
    kind = source.get("type")
    if kind == "url":
        return Image(url=_string(source.get("url"), f"{param}.source.url"))
    if kind != "base64":
        raise InvalidRequest(f"{param}.source.type", "an image source is `base64` or `url`")
    media_type = source.get("media_type")
    if media_type not in IMAGE_TYPES:
        raise InvalidRequest(f"{param}.source.media_type", f"must be one of {', '.join(sorted(IMAGE_TYPES))}")
    try:
        data = base64.b64decode(_string(source.get("data"), f"{param}.source.data"), validate=True)
    except binascii.Error:
        raise InvalidRequest(f"{param}.source.data", "is not base64") from None
    return Image(data=data, media_type=media_type)


def _parts(blocks: list[dict[str, Any]], param: str, images: bool) -> list[Part]:
    """The text (and, where `images`, image) blocks of a content field."""
    parts: list[Part] = []
    for i, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "text":
            parts.append(_string(block.get("text"), f"{param}[{i}].text"))
        elif kind == "image" and images:
            parts.append(_image(block, f"{param}[{i}]"))
        else:
            raise InvalidRequest(f"{param}[{i}].type", f"a block of type {kind!r} is not supported here")
    return parts


def system_text(value: object) -> str | None:
    """The request's `system`: a string or text blocks, joined by blank lines."""
    if value is None:
        return None
    parts = _parts(_blocks(value, "system"), "system", False)
    texts = [part for part in parts if isinstance(part, str) and not part.startswith(BILLING_HEADER)]
    return "\n\n".join(texts) or None


def _tool_result(block: dict[str, Any], param: str, called: set[str]) -> ChatMessage:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or call_id not in called:
        raise InvalidRequest(f"{param}.tool_use_id", "a tool_result answers the `id` of an earlier tool_use")
    parts = _parts(_blocks(block.get("content", ""), f"{param}.content"), f"{param}.content", True)
    if block.get("is_error") is True:
        # OpenAI-compatible upstreams have no error flag on a tool result: say it in the text.
        parts.insert(0, "The tool failed: ")
    return ChatMessage(role="tool", content=text_parts(parts), tool_call_id=call_id)


def _user(blocks: list[dict[str, Any]], param: str, called: set[str]) -> list[ChatMessage]:
    """A user turn: its tool results (each a `tool` message), then its other content, if any."""
    results: list[ChatMessage] = []
    rest: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        if block.get("type") == "tool_result":
            results.append(_tool_result(block, f"{param}[{i}]", called))
        else:
            rest.append(block)
    if not rest:
        return results
    parts = _parts(rest, param, True)
    return [*results, ChatMessage(role="user", content=text_parts(parts))]


def _assistant(blocks: list[dict[str, Any]], param: str, called: set[str]) -> ChatMessage:
    texts: list[str] = []
    calls: list[FunctionCall] = []
    for i, block in enumerate(blocks):
        kind = block.get("type")
        where = f"{param}[{i}]"
        if kind in DROPPED:
            continue
        if kind == "text":
            texts.append(_string(block.get("text"), f"{where}.text"))
        elif kind == "tool_use":
            call_id = _string(block.get("id"), f"{where}.id")
            name = _string(block.get("name"), f"{where}.name")
            arguments = _object(block.get("input", {}), f"{where}.input")
            calls.append(FunctionCall(call_id, name, orjson.dumps(arguments).decode()))
            called.add(call_id)
        else:
            raise InvalidRequest(f"{where}.type", f"a block of type {kind!r} is not supported here")
    return ChatMessage(role="assistant", content=text_parts(texts), tool_calls=tuple(calls))


def chat_messages(value: object, system: str | None) -> list[ChatMessage]:
    """`messages` (and the request's `system`) as the engine's messages. System entries come first,
    wherever they were: the engine makes all of them instructions."""
    if not isinstance(value, list) or not value:
        raise InvalidRequest("messages", "must be a non-empty array")
    notes: list[ChatMessage] = [ChatMessage(role="system", content=system)] if system else []
    turns: list[ChatMessage] = []
    called: set[str] = set()
    """Ids of the tool_use blocks so far: each tool_result answers one of them."""
    for i, raw in enumerate(value):
        param = f"messages[{i}]"
        message = _object(raw, param)
        role = message.get("role")
        blocks = _blocks(message.get("content"), f"{param}.content")
        if role == "user":
            turns.extend(_user(blocks, f"{param}.content", called))
        elif role == "assistant":
            turns.append(_assistant(blocks, f"{param}.content", called))
        elif role == "system":
            texts = _parts(blocks, f"{param}.content", False)
            notes.append(ChatMessage(role="system", content=text_parts(texts)))
        else:
            raise InvalidRequest(f"{param}.role", "a message's role is user, assistant or system")
    if not turns or turns[-1].role not in ("user", "tool"):
        raise InvalidRequest(
            "messages", "the last message must be the user's (a prefilled assistant answer is not supported)"
        )
    return [*notes, *turns]
