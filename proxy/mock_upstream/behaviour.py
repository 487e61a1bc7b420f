"""`MockBehaviour`: every shaping and fault option, and its parsing from a model name or CLI flags."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl

HTTP_FAULTS: Final[frozenset[str]] = frozenset(
    {
        "http400",
        "http401",
        "http403",
        "http404",
        "http408",
        "http409",
        "http413",
        "context_length",
        "http429",
        "http500",
        "http502",
        "http503",
        "http504",
        "overloaded",
    }
)
STREAM_FAULTS: Final[frozenset[str]] = frozenset(
    {"drop", "stall", "instream_error", "malformed", "no_finish"}
)
FAULTS: Final[frozenset[str]] = HTTP_FAULTS | STREAM_FAULTS | {"drop_headers"}
FINISH_REASONS: Final[frozenset[str]] = frozenset({"stop", "length", "content_filter"})
DEFAULT_CHUNKS: Final[int] = 8


class BehaviourError(ValueError):
    """A model-name parameter (or CLI flag) is unknown or has a bad value; `key` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


Parser = Callable[[str], Any]


def _int(minimum: int = 0) -> Parser:
    def parse(value: str) -> int:
        number = int(value)
        if number < minimum:
            raise ValueError(f"must be >= {minimum}")
        return number

    return parse


def _float(minimum: float = 0.0, maximum: float | None = None) -> Parser:
    def parse(value: str) -> float:
        number = float(value)
        if not number >= minimum or (maximum is not None and number > maximum):  # also rejects NaN
            bound = f"between {minimum:g} and {maximum:g}" if maximum is not None else f">= {minimum:g}"
            raise ValueError(f"must be {bound}")
        if number == float("inf") and maximum is None:
            raise ValueError("must be finite")
        return number

    return parse


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("must be 1/0, true/false, yes/no or on/off")


def _str(value: str) -> str:
    return value


def _optional(parser: Parser) -> Parser:
    def parse(value: str) -> Any:
        return None if value.strip().lower() in {"", "none", "null"} else parser(value)

    return parse


def _empty_is_none(value: str) -> str | None:
    return value or None


def _choice(choices: frozenset[str]) -> Parser:
    def parse(value: str) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(sorted(choices))}")
        return value

    return parse


def _opt(default: Any, parse: Parser, help: str) -> Any:
    return field(default=default, metadata={"parse": parse, "help": help})


@dataclass(frozen=True, slots=True)
class MockBehaviour:
    """How the mock answers one request. Defaults: 8 chunks `tok0 tok1 … tok7`, no delays, no fault."""

    # shaping
    chunks: int | None = _opt(
        None, _optional(_int(0)), "content chunks (default 8 words, or one per word of text)"
    )
    ttfc_ms: float = _opt(0.0, _float(0.0), "delay before the first chunk, after the headers (ms)")
    gap_ms: float = _opt(0.0, _float(0.0), "delay between chunks (ms)")
    text: str | None = _opt(None, _str, "explicit answer text (split into `chunks` pieces, else per word)")
    echo: bool = _opt(False, _bool, "answer 'echo: <last user message> (messages: N)'")
    usage: bool = _opt(True, _bool, "report usage (last chunk when stream_options.include_usage)")
    cache_read: int = _opt(0, _int(0), "input tokens reported as read from the prompt cache")
    cache_write: int = _opt(0, _int(0), "input tokens reported as written to the prompt cache")
    finish: str = _opt(
        "stop", _choice(FINISH_REASONS), "finish_reason of a text answer: stop|length|content_filter"
    )
    tool: str | None = _opt(None, _optional(_str), "name of a tool to call before answering")
    tool_args: str = _opt("{}", _str, "arguments JSON of that tool call (sent verbatim)")
    tool_calls: int = _opt(1, _int(1), "how many tool calls in a row before the text answer")
    json: str | None = _opt(None, _empty_is_none, "forced JSON text for structured output (sent verbatim)")
    json_chunk: int = _opt(16, _int(1), "characters per streamed piece of JSON output")
    # faults
    fault: str | None = _opt(
        None, _optional(_choice(FAULTS)), "fault to inject: " + ", ".join(sorted(FAULTS))
    )
    fault_times: int | None = _opt(
        None, _optional(_int(0)), "fault only the first K requests with this model"
    )
    fault_prob: float | None = _opt(
        None, _optional(_float(0.0, 1.0)), "fault each request with probability P"
    )
    fault_every: int | None = _opt(
        None,
        _optional(_int(1)),
        "fault requests 1, N+1, 2N+1, … with this model (instead of fault_times, fault_prob)",
    )
    seed: int | None = _opt(None, _optional(_int(-(2**63))), "seed of the fault_prob random sequence")
    after: int = _opt(0, _int(0), "chunks sent before a stream fault (drop, stall, instream_error, …)")
    stall_ms: float = _opt(3_600_000.0, _float(0.0), "length of a stall (ms); the stream then continues")
    retry_after: float | None = _opt(
        None, _optional(_float(0.0)), "Retry-After seconds of an HTTP fault (e.g. http429)"
    )

    @classmethod
    def from_model_name(cls, name: str, defaults: MockBehaviour) -> MockBehaviour:
        """`label?key=value&…` -> `defaults` with the parameters applied; raises `BehaviourError`."""
        _label, sep, query = name.partition("?")
        if not sep or not query:
            return defaults
        overrides: dict[str, str] = {}
        for part in query.split("&"):
            if not part:
                continue
            if "=" not in part:
                raise BehaviourError(part, f"mock parameter {part!r} needs a value (key=value)")
            [(key, value)] = parse_qsl(part, keep_blank_values=True)
            overrides[key] = value
        return defaults.with_overrides(overrides)

    def with_overrides(self, overrides: Mapping[str, str]) -> MockBehaviour:
        """A copy with the given options parsed from their text form; raises `BehaviourError`."""
        parsed: dict[str, Any] = {}
        for key, value in overrides.items():
            spec = _FIELDS.get(key)
            if spec is None:
                raise BehaviourError(key, f"unknown mock parameter {key!r}; known: {', '.join(_FIELDS)}")
            try:
                parsed[key] = spec.metadata["parse"](value)
            except ValueError as exc:
                raise BehaviourError(key, f"bad value {value!r} for mock parameter {key!r}: {exc}") from None
        return dataclasses.replace(self, **parsed) if parsed else self


_FIELDS: Final[dict[str, dataclasses.Field[Any]]] = {f.name: f for f in dataclasses.fields(MockBehaviour)}


def option_help() -> dict[str, str]:
    """Option name -> one-line help, in declaration order (used by the CLI)."""
    return {name: str(f.metadata["help"]) for name, f in _FIELDS.items()}
