"""Structured output from a JSON Schema: the output type the model sees, and a validator that
holds the final object to the schema (pydantic-ai's `StructuredDict` only describes it)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError
from pydantic_ai import ModelRetry, RunContext, StructuredDict

OUTPUT_TOOL_PREFIX = "final_result"
"""pydantic-ai's output tool is named `final_result` (or `final_result_<name>` for several)."""


class SchemaLoadError(ValueError):
    """The configured schema cannot be read or is not a valid JSON Schema."""


def load_schema(value: dict[str, Any] | str) -> dict[str, Any]:
    """An inline schema, or the path of a JSON file holding one; checked against its metaschema."""
    if isinstance(value, str):
        try:
            schema = orjson.loads(Path(value).read_bytes())
        except OSError as exc:
            raise SchemaLoadError(f"cannot read {value}: {exc.strerror or exc}") from exc
        except orjson.JSONDecodeError as exc:
            raise SchemaLoadError(f"{value} is not JSON: {exc}") from exc
    else:
        schema = copy.deepcopy(value)
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise SchemaLoadError('the schema must be a JSON object with "type": "object"')
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise SchemaLoadError(f"not a valid JSON Schema: {exc.message}") from exc
    return schema


class SchemaOutput:
    """The `output_type` and output validator for one schema."""

    def __init__(self, schema: dict[str, Any], name: str) -> None:
        self.schema = schema
        # StructuredDict adds title/description to the dict it is given: give it a copy.
        self.output_type = StructuredDict(copy.deepcopy(schema), name=name)
        self._validator = Draft202012Validator(schema)

    def validate(self, ctx: RunContext[None], output: dict[str, Any]) -> dict[str, Any]:
        if ctx.partial_output:
            return output
        errors = sorted(self._validator.iter_errors(output), key=lambda e: list(e.path))
        if errors:
            # Every problem at once, so that one retry can fix them all.
            found = "; ".join(f"at {_where(e)}: {e.message}" for e in errors[:_MAX_ERRORS])
            raise ModelRetry(f"The output does not match the JSON schema {found}")
        return output


_MAX_ERRORS = 5


def _where(error: ValidationError) -> str:
    return "/".join(str(p) for p in error.path) or "(root)"
