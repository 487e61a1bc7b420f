"""A small deterministic generator of a JSON value that satisfies a JSON schema (for structured output)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

_MAX_DEPTH = 16

_STRING_FORMATS: dict[str, str] = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "hostname": "example.com",
    "duration": "P1D",
}


def sample_from_schema(schema: Mapping[str, Any]) -> Any:
    """A value valid for `schema`: objects, properties, required, $ref/$defs, anyOf/oneOf/allOf, enum,
    const, string (formats, lengths), integer/number (bounds, multipleOf), boolean, null, arrays.
    Deterministic: strings are the property name, numbers the smallest allowed value near 1."""
    return _sample(schema, schema, "value", 0)


def _resolve(ref: str, root: Mapping[str, Any]) -> Mapping[str, Any]:
    if not ref.startswith("#"):
        return {}
    node: Any = root
    for part in ref.lstrip("#").strip("/").split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            return {}
        node = node[part]
    return node if isinstance(node, Mapping) else {}


def _sample(schema: Mapping[str, Any], root: Mapping[str, Any], name: str, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return None
    if "$ref" in schema:
        merged = {**_resolve(str(schema["$ref"]), root), **{k: v for k, v in schema.items() if k != "$ref"}}
        return _sample(merged, root, name, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            non_null = [o for o in options if isinstance(o, Mapping) and o.get("type") != "null"]
            choice = non_null[0] if non_null else options[0]
            rest = {k: v for k, v in schema.items() if k != key}
            return _sample({**rest, **choice}, root, name, depth + 1)
    if isinstance(schema.get("allOf"), list):
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            if isinstance(part, Mapping):
                part = _resolve(str(part["$ref"]), root) if "$ref" in part else part
                merged = _merge(merged, part)
        return _sample(merged, root, name, depth + 1)

    kind = schema.get("type")
    if isinstance(kind, list):
        non_null_kinds = [k for k in kind if k != "null"]
        kind = non_null_kinds[0] if non_null_kinds else "null"
    if kind is None:
        if "properties" in schema or "required" in schema:
            kind = "object"
        elif "items" in schema or "prefixItems" in schema:
            kind = "array"
        else:
            kind = "string"

    if kind == "object":
        return _object(schema, root, depth)
    if kind == "array":
        return _array(schema, root, name, depth)
    if kind == "integer":
        return _integer(schema)
    if kind == "number":
        return _number(schema)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema, name)


def _merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        if key == "properties" and isinstance(out.get(key), Mapping):
            out[key] = {**out[key], **value}
        elif key == "required" and isinstance(out.get(key), list):
            out[key] = [*out[key], *value]
        else:
            out[key] = value
    return out


def _object(schema: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> dict[str, Any]:
    props = schema.get("properties")
    props = props if isinstance(props, Mapping) else {}
    out: dict[str, Any] = {}
    for key, sub in props.items():
        out[key] = _sample(sub if isinstance(sub, Mapping) else {}, root, key, depth + 1)
    for key in schema.get("required") or []:
        if key not in out:
            extra = schema.get("additionalProperties")
            out[key] = _sample(extra if isinstance(extra, Mapping) else {}, root, key, depth + 1)
    return out


def _array(schema: Mapping[str, Any], root: Mapping[str, Any], name: str, depth: int) -> list[Any]:
    prefix = schema.get("prefixItems")
    prefix = prefix if isinstance(prefix, list) else []
    items = schema.get("items")
    items = items if isinstance(items, Mapping) else {}
    minimum = int(schema.get("minItems", 1))
    maximum = schema.get("maxItems")
    count = max(minimum, len(prefix), 1)
    if maximum is not None:
        count = min(count, int(maximum))
    out: list[Any] = []
    for i in range(count):
        sub = prefix[i] if i < len(prefix) else items
        out.append(_sample(sub if isinstance(sub, Mapping) else {}, root, name, depth + 1))
    return out


def _bounds(schema: Mapping[str, Any], step: float) -> tuple[float | None, float | None]:
    lo = schema.get("minimum")
    hi = schema.get("maximum")
    if "exclusiveMinimum" in schema and not isinstance(schema["exclusiveMinimum"], bool):
        lo = schema["exclusiveMinimum"] + step if lo is None else max(lo, schema["exclusiveMinimum"] + step)
    if "exclusiveMaximum" in schema and not isinstance(schema["exclusiveMaximum"], bool):
        hi = schema["exclusiveMaximum"] - step if hi is None else min(hi, schema["exclusiveMaximum"] - step)
    return lo, hi


def _integer(schema: Mapping[str, Any]) -> int:
    lo, hi = _bounds(schema, 1)
    value = 1.0
    if lo is not None:
        value = max(value, math.ceil(lo)) if hi is None or hi >= 1 else math.ceil(lo)
    if hi is not None:
        value = min(value, math.floor(hi))
    multiple = schema.get("multipleOf")
    if isinstance(multiple, int) and multiple > 0:
        value = math.ceil(value / multiple) * multiple
    return int(value)


def _number(schema: Mapping[str, Any]) -> float:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    lo_excl, hi_excl = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(lo_excl, int | float) and not isinstance(lo_excl, bool) and (lo is None or lo_excl >= lo):
        lo = lo_excl
    else:
        lo_excl = None
    if isinstance(hi_excl, int | float) and not isinstance(hi_excl, bool) and (hi is None or hi_excl <= hi):
        hi = hi_excl
    else:
        hi_excl = None
    if lo is not None and hi is not None:
        return (float(lo) + float(hi)) / 2
    value = 1.5
    if lo is not None:
        value = max(value, float(lo) + (1.0 if lo_excl is not None else 0.0))
    if hi is not None:
        value = min(value, float(hi) - (1.0 if hi_excl is not None else 0.0))
    multiple = schema.get("multipleOf")
    if isinstance(multiple, int | float) and multiple > 0:
        value = math.ceil(value / multiple) * multiple
    return value


def _string(schema: Mapping[str, Any], name: str) -> str:
    fmt = schema.get("format")
    value = _STRING_FORMATS.get(fmt, name) if isinstance(fmt, str) else name
    min_length = int(schema.get("minLength", 0))
    if len(value) < min_length:
        value = value + "x" * (min_length - len(value))
    max_length = schema.get("maxLength")
    if max_length is not None:
        value = value[: int(max_length)]
    return value
