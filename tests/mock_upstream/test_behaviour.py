"""Model-name parsing, `expected_text` and the JSON-schema sample generator (no sockets needed)."""

from __future__ import annotations

from enum import Enum
from typing import Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from proxy.mock_upstream import BehaviourError, MockBehaviour, expected_text
from proxy.mock_upstream.answer import split_even, split_words
from proxy.mock_upstream.schema import sample_from_schema

DEFAULTS = MockBehaviour()


def test_plain_label_is_the_defaults() -> None:
    assert MockBehaviour.from_model_name("demo", DEFAULTS) is DEFAULTS
    custom = MockBehaviour(chunks=3)
    assert MockBehaviour.from_model_name("anything at all", custom) is custom


def test_parameters_override_defaults() -> None:
    b = MockBehaviour.from_model_name(
        "mock?chunks=64&gap_ms=10&text=hello+there%26you&echo=yes&usage=off&fault=stall&fault_prob=0.5&seed=7",
        MockBehaviour(ttfc_ms=5),
    )
    assert (b.chunks, b.gap_ms, b.ttfc_ms, b.text) == (64, 10.0, 5.0, "hello there&you")
    assert (b.echo, b.usage, b.fault, b.fault_prob, b.seed) == (True, False, "stall", 0.5, 7)
    assert MockBehaviour.from_model_name("x?fault=none", MockBehaviour(fault="http500")).fault is None


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("m?chunkz=3", "chunkz"),
        ("m?chunks=abc", "chunks"),
        ("m?chunks=-1", "chunks"),
        ("m?gap_ms=nan", "gap_ms"),
        ("m?fault=explode", "fault"),
        ("m?fault_prob=1.5", "fault_prob"),
        ("m?finish=maybe", "finish"),
        ("m?echo=perhaps", "echo"),
        ("m?tool_calls=0", "tool_calls"),
        ("m?chunks", "chunks"),
    ],
)
def test_bad_parameters_name_the_key(model: str, key: str) -> None:
    with pytest.raises(BehaviourError) as info:
        MockBehaviour.from_model_name(model, DEFAULTS)
    assert info.value.key == key
    assert key in info.value.message


def test_expected_text_rules() -> None:
    assert expected_text(DEFAULTS) == "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7"
    assert expected_text(MockBehaviour(chunks=3)) == "tok0 tok1 tok2"
    assert expected_text(MockBehaviour(chunks=0)) == ""
    assert expected_text(MockBehaviour(text="exact  words ")) == "exact  words "
    messages = [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]},
    ]
    assert expected_text(MockBehaviour(echo=True), messages) == "echo: hi there (messages: 2)"
    with_tool = [*messages, {"role": "assistant", "tool_calls": []}, {"role": "tool", "content": "42"}]
    assert expected_text(MockBehaviour(tool="t", text="done"), with_tool) == "done (tool result: 42)"


@pytest.mark.parametrize("text", ["", "one", " lead and trail ", "a  b\nc", "x" * 10])
def test_splitters_concatenate(text: str) -> None:
    assert "".join(split_words(text)) == text
    for n in (1, 3, 7):
        pieces = split_even(text, n)
        assert len(pieces) == n
        assert "".join(pieces) == text


class Colour(Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    street: str = Field(min_length=12)
    zip_code: str = Field(max_length=3)
    country: Literal["FR"]


class Person(BaseModel):
    name: str
    age: int = Field(ge=18, le=30)
    score: float = Field(gt=0, lt=1)
    ratio: float = Field(gt=5)
    tags: list[str] = Field(min_length=2)
    active: bool
    colour: Colour
    home: Address
    previous: list[Address]
    nickname: str | None = None
    email: str = Field(json_schema_extra={"format": "email"})


def test_schema_sample_satisfies_pydantic_and_jsonschema() -> None:
    schema = Person.model_json_schema()
    value = sample_from_schema(schema)
    jsonschema.validate(value, schema)
    person = Person.model_validate(value)
    assert person.colour is Colour.RED
    assert len(person.tags) == 2
    assert person.home.country == "FR"


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "integer", "exclusiveMinimum": 10, "multipleOf": 5},
        {"type": "number", "maximum": -3},
        {"type": ["null", "string"], "minLength": 4},
        {"type": "array", "prefixItems": [{"type": "integer"}, {"const": "x"}], "maxItems": 2},
        {"allOf": [{"type": "object", "properties": {"a": {"type": "boolean"}}, "required": ["a"]}]},
        {"type": "object", "required": ["free"], "additionalProperties": {"type": "integer"}},
        {"oneOf": [{"type": "null"}, {"type": "object", "properties": {"n": {"enum": [3, 4]}}}]},
    ],
)
def test_schema_sample_edge_cases(schema: dict[str, object]) -> None:
    jsonschema.validate(sample_from_schema(schema), schema)
