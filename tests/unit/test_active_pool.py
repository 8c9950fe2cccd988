"""Pool streaming (exclusion by content, duplicates, unreadable files) and the sent-images ledger."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from marauder.active.ledger import LedgerRow, append_ledger, read_ledger, sent_hashes
from marauder.active.pool import PoolStats, hashes_of, iter_batches, list_pool
from marauder.errors import DataError


def write_image(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((8, 8, 3), value, np.uint8))
    return path


def test_stream_skips_known_duplicate_and_unreadable(tmp_path):
    a = write_image(tmp_path / "pool" / "a.png", 10)
    write_image(tmp_path / "pool" / "sub" / "b.png", 20)
    (tmp_path / "pool" / "c.png").write_bytes((tmp_path / "pool" / "a.png").read_bytes())  # same bytes as a
    (tmp_path / "pool" / "d.png").write_bytes(b"not an image")
    write_image(tmp_path / "labelled" / "renamed.png", 20)  # b under another name, already labelled
    entries = list_pool([("pool", tmp_path / "pool"), ("again", tmp_path / "pool"), ("gone", tmp_path / "nope")])
    assert [p.name for _, p in entries] == ["a.png", "c.png", "d.png", "b.png"]
    stats = PoolStats()
    batches = list(iter_batches(entries, 2, hashes_of([tmp_path / "labelled"]), stats))
    assert [n for n, _ in batches] == [2, 2]
    loaded = [img for _, batch in batches for img in batch]
    assert [i.path for i in loaded] == [a] and loaded[0].image.shape == (8, 8, 3)
    assert (stats.listed, stats.excluded, stats.duplicates, stats.unreadable) == (4, 1, 1, 1)


def test_stream_error_in_loader_reaches_the_caller(tmp_path, monkeypatch):
    write_image(tmp_path / "a.png", 1)
    import marauder.active.pool as pool

    def boom(*_args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(pool, "_load", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        list(iter_batches(list_pool([("p", tmp_path)]), 1, set(), PoolStats()))


def test_ledger_round_trip_and_errors(tmp_path):
    path = tmp_path / "ledger.csv"
    assert read_ledger(path) == [] and sent_hashes(path) == set()
    rows = [LedgerRow("ab" * 32, "pkg-1", 1, "images/a.jpg", "pool", "t"),
            LedgerRow("cd" * 32, "pkg-1", 2, "images/b.jpg", "pool", "t")]
    append_ledger(path, rows[:1])
    append_ledger(path, rows[1:])
    assert read_ledger(path) == rows and sent_hashes(path) == {"ab" * 32, "cd" * 32}
    path.write_text(path.read_text().replace(",1,", ",one,"))
    with pytest.raises(DataError, match="ledger.csv:2: malformed ledger row"):
        read_ledger(path)
    path.write_text("sha,package\n")
    with pytest.raises(DataError, match="unexpected ledger columns"):
        read_ledger(path)
