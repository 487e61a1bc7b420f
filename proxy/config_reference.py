"""Generated documentation sections: the configuration reference (from the settings models) and the
mock upstream's keys (from its docstring). `python -m proxy.config_reference docs/configuration.md`
rewrites them in place in the files given; a test fails when a file of docs/ is out of step."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from pydantic import BaseModel

import proxy.mock_upstream
from proxy.auth.settings import KeySettings, LimitSettings
from proxy.config import AgentSettings, MCPServerSettings, Settings, UpstreamSettings


def _rows(table: str, model: type[BaseModel]) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        default = "required" if field.is_required() else f"`{field.get_default(call_default_factory=True)!r}`"
        # A docstring of several lines is one table row: a line break would end the row.
        meaning = " ".join((field.description or "").split())
        rows.append(f"| `{table}` | `{name}` | {default} | {meaning} |")
    return rows


def config_reference() -> str:
    lines = ["| table | key | default | meaning |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            lines += _rows(f"[{name}]", annotation)
    lines += _rows("[upstreams.NAME]", UpstreamSettings)
    lines += _rows("[mcp_servers.NAME]", MCPServerSettings)
    lines += _rows("[agents.NAME]", AgentSettings)
    lines += _rows("[[auth.keys]]", KeySettings)
    lines += _rows("[[auth.keys]] limits", LimitSettings)
    return "\n".join(lines)


def mock_reference() -> str:
    doc = proxy.mock_upstream.__doc__ or ""
    start = doc.index("Shaping keys")
    end = doc.index("Stats\n-----")
    return doc[start:end].strip()


SECTIONS = {"config-reference": config_reference, "mock-reference": mock_reference}


def render(text: str) -> str:
    for name, make in SECTIONS.items():
        start, end = f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"
        pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
        text = pattern.sub(lambda _: start + make() + "\n" + end, text)  # noqa: B023 (used at once)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", type=Path, nargs="+", help="Markdown files with generated sections")
    for path in parser.parse_args().files:
        path.write_text(render(path.read_text()))


if __name__ == "__main__":
    main()
