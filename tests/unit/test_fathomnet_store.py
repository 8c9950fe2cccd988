"""The download store's recovery after a kill (journal merge, stale temp files, missing images) and
the listing's refusal of unsafe file names."""

from __future__ import annotations

import json

import pytest

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


@pytest.mark.parametrize("doc", [[1, 2], {"images": [{"name": "a.jpg"}]}, {"images": ["a.jpg"]}])
def test_foreign_metadata_is_one_clear_error(tmp_path, doc):
    from marauder.errors import MarauderError

    (tmp_path / "metadata.json").write_text(json.dumps(doc))
    store = FathomNetStore(tmp_path / "images", tmp_path / "labels", tmp_path / "metadata.json")
    with pytest.raises(MarauderError, match="not a FathomNet download's metadata") as info:
        store.prepare()
    assert info.value.file == str(tmp_path / "metadata.json")


def test_listing_skips_records_whose_uuid_is_not_a_plain_file_name():
    """The uuid becomes the image's file name: a server (any FATHOMNET_API_URL) must not steer writes."""
    from fathomnet.dto import AImageDTO

    from marauder.data.fathomnet.downloader import DownloadOptions, _list_concept

    class Client:
        def find_images(self, constraints):
            return [AImageDTO(uuid=u, url=f"http://h/{i}.jpg") for i, u in
                    enumerate(["../../escape", "a/b", "..", "0b1f3c2e-1111-4a4a-9c9c-123456789abc"])]

    items = _list_concept(Client(), "Pterois", DownloadOptions(["Pterois"], ["lionfish"], {}, page_size=100))
    assert [i.uuid for i in items] == ["0b1f3c2e-1111-4a4a-9c9c-123456789abc"]


def _jpeg(w: int = 64, h: int = 48) -> bytes:
    import cv2
    import numpy as np

    ok, buf = cv2.imencode(".jpg", np.full((h, w, 3), 90, np.uint8))
    return buf.tobytes()


def _noisy_jpeg(w: int = 256, h: int = 192) -> bytes:
    """A JPEG whose scan data is most of the file (noise does not compress)."""
    import cv2
    import numpy as np

    ok, buf = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))
    return buf.tobytes()


def _png(w: int = 20, h: int = 10) -> bytes:
    import cv2
    import numpy as np

    ok, buf = cv2.imencode(".png", np.zeros((h, w), np.uint8))
    return buf.tobytes()


@pytest.mark.parametrize(("name", "make", "size"), [
    ("jpeg", _jpeg, (64, 48)),
    ("png", _png, (20, 10)),
    ("html error page served as the image", lambda: b"<html><body>502 Bad Gateway</body></html>", None),
    ("random bytes", lambda: bytes(range(256)) * 8, None),
    ("empty body", lambda: b"", None),
    ("jpeg header, no scan data", lambda: _jpeg()[:200], None),
    ("jpeg cut off mid-scan", lambda: _noisy_jpeg()[: len(_noisy_jpeg()) * 6 // 10], None),
])
def test_what_passes_the_image_check(name, make, size):
    from marauder.data.fathomnet.downloader import BadImage, _image_ok

    if size is None:
        with pytest.raises(BadImage):
            _image_ok(make())
    else:
        assert _image_ok(bytearray(make())) == size
