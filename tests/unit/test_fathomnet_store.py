"""The download store's recovery after a kill: journal merge, stale temp files, missing images."""

from __future__ import annotations

import json

from marauder.data.fathomnet.store import JOURNAL_NAME, FathomNetStore


def _entry(name: str) -> dict:
    return {"file": name, "sha256": "x", "width": 10, "height": 10,
            "boxes": [{"concept": "A", "x": 0, "y": 0, "width": 5, "height": 5}]}


def test_recovers_from_journal_with_a_cut_last_line(tmp_path):
    root = tmp_path / "fathomnet"
    (root / "images").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (root / "images" / name).write_bytes(b"jpeg")
    (root / "metadata.json").write_text(json.dumps({"classes": ["k"], "images": [_entry("a.jpg"), _entry("gone.jpg")]}))
    journal = root / JOURNAL_NAME
    journal.write_text(json.dumps(_entry("b.jpg")) + "\n" + json.dumps(_entry("c.jpg"))[:25])  # killed mid-line
    (root / "images" / ".d.jpg.abc.part").write_bytes(b"half")
    store = FathomNetStore(root / "images", root / "labels", root / "metadata.json")
    store.prepare()
    assert sorted(store.entries) == ["a.jpg", "b.jpg"]  # gone.jpg has no image; c.jpg's line was cut
    assert store.header["classes"] == ["k"]
    assert not (root / "images" / ".d.jpg.abc.part").exists()

    store.add(_entry("c.jpg"), {"A": 0}, ["k"])
    assert (root / "labels" / "c.txt").read_text() == "0 0.250000 0.250000 0.500000 0.500000\n"
    assert store.relabel_all({"A": 0}, ["k"]) == 2  # a and b get labels for the current mapping
    store.flush(final=True)
    assert not journal.exists()
    assert [e["file"] for e in json.loads((root / "metadata.json").read_text())["images"]] == ["a.jpg", "b.jpg", "c.jpg"]
    assert sorted(p.name for p in root.rglob(".*")) == []
