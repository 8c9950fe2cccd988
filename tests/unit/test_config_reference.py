"""docs/CONFIG_REFERENCE.md is generated from the typed config; the committed copy must not drift."""

from __future__ import annotations

from pathlib import Path

from marauder.config.reference import render_reference

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "CONFIG_REFERENCE.md"
REGENERATE = "marauder config --reference > docs/CONFIG_REFERENCE.md"


def test_config_reference_is_current():
    assert REFERENCE.is_file(), f"{REFERENCE} is missing; generate it with `{REGENERATE}`"
    committed = REFERENCE.read_text(encoding="utf-8")
    assert committed == render_reference(), (
        f"docs/CONFIG_REFERENCE.md is out of date with the typed config; regenerate it with `{REGENERATE}` "
        "(from the repository root, with the virtual environment active) and commit the result"
    )


def test_config_reference_lists_every_section():
    from marauder.config.schema import MarauderConfig

    text = render_reference()
    for section in MarauderConfig.model_fields:
        assert f"## `{section}`" in text, f"section {section!r} missing from the generated reference"
