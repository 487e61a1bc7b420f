"""What the mock says to a request: text pieces, a tool call or JSON output, and the usage it reports."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from proxy.mock_upstream.behaviour import DEFAULT_CHUNKS, MockBehaviour
from proxy.mock_upstream.schema import sample_from_schema

OUTPUT_TOOL_PREFIX = "final_result"
_WORD = re.compile(r"\s*\S+")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the mock makes; `arguments` is sent in `pieces`."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Answer:
    """The planned answer: content `pieces` (text or JSON) or a tool call whose arguments are `pieces`."""

    pieces: list[str]
    finish_reason: str
    tool_call: ToolCall | None
    input_tokens: int

    @property
    def output_tokens(self) -> int:
        return len(self.pieces)

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def split_words(text: str) -> list[str]:
    """Word by word, each piece with its leading whitespace; the pieces concatenate to `text`."""
    pieces = _WORD.findall(text)
    if not pieces:
        return [text] if text else []
    tail = len("".join(pieces))
    if tail < len(text):
        pieces[-1] += text[tail:]
    return pieces


def split_even(text: str, count: int) -> list[str]:
    """`count` pieces of near-equal length (some empty if `text` is shorter than `count`)."""
    if count <= 0:
        return []
    size, extra = divmod(len(text), count)
    pieces: list[str] = []
    start = 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def split_fixed(text: str, size: int) -> list[str]:
    """Pieces of `size` characters (the last may be shorter); at least one piece."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [text]


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a message whose content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", "")) for part in content if isinstance(part, Mapping) and "text" in part
        )
    return ""


def _since_last_user(messages: Sequence[Any]) -> list[Mapping[str, Any]]:
    tail: list[Mapping[str, Any]] = []
    for message in reversed(messages):
        if not isinstance(message, Mapping):
            continue
        if message.get("role") == "user":
            break
        tail.append(message)
    tail.reverse()
    return tail


def _last_user_text(messages: Sequence[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return message_text(message)
    return ""


def _tool_results(messages: Sequence[Any]) -> list[str]:
    return [message_text(m) for m in _since_last_user(messages) if m.get("role") == "tool"]


def answer_pieces(behaviour: MockBehaviour, messages: Sequence[Any] = ()) -> list[str]:
    """The content pieces of a text answer to `messages` (the rules of `expected_text`)."""
    results = _tool_results(messages) if behaviour.tool else []
    if behaviour.echo:
        text = f"echo: {_last_user_text(messages)} (messages: {len(messages)})"
    elif behaviour.text is not None:
        text = behaviour.text
    else:
        count = DEFAULT_CHUNKS if behaviour.chunks is None else behaviour.chunks
        text = " ".join(f"tok{i}" for i in range(count))
        if not results:
            return split_words(text)
    if results:
        text = f"{text} (tool result: {results[-1]})"
    if behaviour.chunks is not None:
        return split_even(text, behaviour.chunks)
    return split_words(text)


def expected_text(behaviour: MockBehaviour, messages: Sequence[Any] = ()) -> str:
    """The full text the mock answers to `messages` (text answers only).

    Default `tok0 tok1 … tok{chunks-1}`; else `text`; else with `echo`,
    `echo: <last user message> (messages: <len(messages)>)`; once a `tool` was called,
    ` (tool result: <content of the last tool message>)` is appended.
    """
    return "".join(answer_pieces(behaviour, messages))


def _word_count(messages: Sequence[Any]) -> int:
    total = 0
    for message in messages:
        if isinstance(message, Mapping):
            total += len(message_text(message).split())
    return total


def _output_tool(body: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    tools = body.get("tools")
    if not isinstance(tools, list):
        return None
    for tool in tools:
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if isinstance(function, Mapping):
            name = function.get("name")
            if isinstance(name, str) and name.startswith(OUTPUT_TOOL_PREFIX):
                params = function.get("parameters")
                return name, params if isinstance(params, Mapping) else {}
    return None


def _response_schema(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The schema the answer must match, if the request asks for JSON (`json_object`: any object)."""
    fmt = body.get("response_format")
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_object":
        return {"type": "object"}
    if not isinstance(fmt, Mapping) or fmt.get("type") != "json_schema":
        return None
    spec = fmt.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    return schema if isinstance(schema, Mapping) else {}


def _json_text(behaviour: MockBehaviour, schema: Mapping[str, Any]) -> str:
    if behaviour.json is not None:
        return behaviour.json
    return orjson.dumps(sample_from_schema(schema)).decode()


def plan_answer(behaviour: MockBehaviour, body: Mapping[str, Any]) -> Answer:
    """Decide the answer to a request body: a `tool` call, structured output, or text."""
    raw = body.get("messages")
    messages: Sequence[Any] = raw if isinstance(raw, list) else ()
    input_tokens = _word_count(messages)

    if behaviour.tool:
        done = sum(1 for m in _since_last_user(messages) if m.get("role") == "tool")
        if done < behaviour.tool_calls:
            call_no = 1 + sum(1 for m in messages if isinstance(m, Mapping) and m.get("role") == "tool")
            call = ToolCall(f"call_{call_no}", behaviour.tool, behaviour.tool_args)
            pieces = split_even(call.arguments, min(3, max(1, len(call.arguments))))
            return Answer(pieces, "tool_calls", call, input_tokens)

    output_tool = _output_tool(body)
    if output_tool is not None:
        name, params = output_tool
        arguments = _json_text(behaviour, params)
        call_no = 1 + sum(1 for m in messages if isinstance(m, Mapping) and m.get("role") == "tool")
        call = ToolCall(f"call_{call_no}", name, arguments)
        return Answer(split_fixed(arguments, behaviour.json_chunk), "tool_calls", call, input_tokens)

    schema = _response_schema(body)
    if schema is not None or behaviour.json is not None:
        text = _json_text(behaviour, schema or {})
        return Answer(split_fixed(text, behaviour.json_chunk), behaviour.finish, None, input_tokens)

    return Answer(answer_pieces(behaviour, messages), behaviour.finish, None, input_tokens)
