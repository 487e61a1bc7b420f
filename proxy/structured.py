"""Structured output from a JSON Schema: the output type the model sees, and a validator that
holds the final object to the schema (pydantic-ai's `StructuredDict` only describes it)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError
from pydantic import GetCoreSchemaHandler
from pydantic_ai import ModelRetry, RunContext, StructuredDict
from pydantic_core import core_schema
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

OUTPUT_TOOL_PREFIX = "final_result"
"""pydantic-ai's output tool is named `final_result` (or `final_result_<name>` for several)."""


class SchemaLoadError(ValueError):
    """The configured schema cannot be read or is not a valid JSON Schema."""


def load_schema(value: dict[str, Any] | str) -> dict[str, Any]:
    """An inline schema, or the path of a JSON file holding one; checked by `check_schema`."""
    if isinstance(value, str):
        try:
            schema = orjson.loads(Path(value).read_bytes())
        except OSError as exc:
            raise SchemaLoadError(f"cannot read {value}: {exc.strerror or exc}") from exc
        except orjson.JSONDecodeError as exc:
            raise SchemaLoadError(f"{value} is not JSON: {exc}") from exc
    else:
        schema = value
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise SchemaLoadError('the schema must be a JSON object with "type": "object"')
    check_schema(schema)
    return copy.deepcopy(schema)


def check_schema(schema: dict[str, Any]) -> None:
    """Raise `SchemaLoadError` unless `schema` is a valid JSON Schema whose every `$ref` points
    inside it: the model client and the validator would fail later on anything else."""
    try:
        Draft202012Validator.check_schema(schema)
        resolver = Registry().with_resource("", DRAFT202012.create_resource(schema)).resolver()
        for ref in _refs(schema):
            try:
                resolver.lookup(ref)
            except Unresolvable:
                raise SchemaLoadError(f"`$ref` {ref!r} does not point inside the schema") from None
    except SchemaError as exc:
        raise SchemaLoadError(f"not a valid JSON Schema: {exc.message}") from exc
    except RecursionError:
        raise SchemaLoadError("the schema is nested too deeply") from None


def _refs(schema: dict[str, Any]) -> list[str]:
    """Every `$ref` in the schema; a loop, not recursion, as a client's schema may nest deeply."""
    refs: list[str] = []
    todo: list[Any] = [schema]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                refs.append(ref)
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return refs


class SchemaOutput:
    """The `output_type` and output validator for one schema."""

    def __init__(self, schema: dict[str, Any], name: str, description: str | None = None) -> None:
        self.schema = schema
        # StructuredDict adds title/description to the dict it is given: give it a copy.
        self.output_type = StructuredDict(copy.deepcopy(schema), name=name, description=description)
        self._validator = Draft202012Validator(schema)

    def problems(self, output: dict[str, Any]) -> str | None:
        """What is wrong with `output`, for the model to fix; None when it matches the schema."""
        errors = sorted(self._validator.iter_errors(output), key=lambda e: list(e.path))
        if not errors:
            return None
        # Every problem at once, so that one retry can fix them all.
        found = "; ".join(f"at {_where(e)}: {e.message}" for e in errors[:_MAX_ERRORS])
        return f"The output does not match the JSON schema {found}"

    def validate(self, ctx: RunContext[None], output: dict[str, Any]) -> dict[str, Any]:
        if ctx.partial_output:
            return output
        problem = self.problems(output)
        if problem is not None:
            raise ModelRetry(problem)
        return output

    def checked_type(self) -> Any:
        """`output_type` that holds the object to the schema itself: for a run of an agent that has
        no output validator for this schema (a client's `response_format`)."""

        def check(output: dict[str, Any]) -> dict[str, Any]:
            problem = self.problems(output)
            if problem is not None:
                raise ValueError(problem)  # pydantic-ai sends it to the model as a retry
            return output

        def core(cls: type, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
            any_object = core_schema.dict_schema(core_schema.str_schema(), core_schema.any_schema())
            return core_schema.no_info_after_validator_function(check, any_object)

        return type("CheckedDict", (self.output_type,), {"__get_pydantic_core_schema__": classmethod(core)})


_MAX_ERRORS = 5


def _where(error: ValidationError) -> str:
    return "/".join(str(p) for p in error.path) or "(root)"
