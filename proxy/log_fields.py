"""Structured log fields: `log.info(msg, extra=fields(model=..., ...))`; the app's formatters render
them (as JSON keys, or `key=value` for a person)."""

from __future__ import annotations

from typing import Any, Final

FIELDS_ATTR: Final = "fields"
"""The `LogRecord` attribute the fields travel in."""


def fields(**values: Any) -> dict[str, dict[str, Any]]:
    return {FIELDS_ATTR: values}
