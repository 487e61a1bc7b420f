"""The README's generated reference sections match the code they document."""

from __future__ import annotations

from pathlib import Path

from proxy.config_reference import render

README = Path(__file__).parent.parent / "README.md"


def test_readme_reference_sections_are_current() -> None:
    text = README.read_text()
    assert render(text) == text, "run: .venv/bin/python -m proxy.config_reference --readme README.md"


def test_readme_starts_with_the_two_commands() -> None:
    first_screen = README.read_text()[:1500]
    assert "make run" in first_screen
    assert "make test" in first_screen
