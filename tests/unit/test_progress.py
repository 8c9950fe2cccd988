"""The console's progress bar: drawn with count and rate on a terminal, no output (and no per-item
work) elsewhere; names are printed as written (no emoji codes)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from marauder import log


@pytest.mark.parametrize("terminal", [True, False])
def test_progress_yields_every_item_and_draws_only_on_a_terminal(monkeypatch, terminal):
    out = io.StringIO()
    monkeypatch.setattr(log, "console", Console(file=out, force_terminal=terminal, width=120, emoji=False))
    items = list(log.progress(iter(range(5)), "downloading", total=5, rate_unit="img"))
    assert items == [0, 1, 2, 3, 4]
    text = out.getvalue()
    if terminal:
        assert "downloading" in text and "5/5" in text and "img/s" in text
    else:
        assert text == ""


def test_names_with_colons_are_printed_as_written():
    with log.console.capture() as captured:
        log.console.print("concept :fish: and file a:b:c.jpg")
    assert ":fish:" in captured.get()
