"""The embedded sample: deterministic, complete, and varied the way the issue asks."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from marauder.data.sample import SAMPLE_CLASSES, generate_sample, install_sample
from marauder.errors import DataError
from marauder.formats.yolo import read_labels
from marauder.fsio import sha256_file
from marauder.workspace import Workspace


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = generate_sample(tmp_path / "a", seed=5, n_images=10, n_unlabelled=3)
    generate_sample(tmp_path / "b", seed=5, n_images=10, n_unlabelled=3)
    generate_sample(tmp_path / "c", seed=6, n_images=10, n_unlabelled=3)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    assert _digests(tmp_path / "a") != _digests(tmp_path / "c")
    assert a.n_images == 10 and a.n_unlabelled == 3


def test_layout_and_metadata(sample_dir):
    images = sorted((sample_dir / "images").glob("*.jpg"))
    assert len(images) == 96
    assert len(list((sample_dir / "unlabelled/images").glob("*.jpg"))) == 48
    assert (sample_dir / "classes.txt").read_text().split() == list(SAMPLE_CLASSES)
    meta = json.loads((sample_dir / "metadata.json").read_text())
    assert meta["group_key"] == "dive" and meta["classes"] == list(SAMPLE_CLASSES)
    assert [r["file"] for r in meta["images"]] == [p.name for p in images]
    dives = {r["dive"] for r in meta["images"]}
    assert len(dives) >= 3
    for rec, image in zip(meta["images"], images):
        assert image.name.startswith(f"dive{rec['dive']:02d}_frame")
        rows = read_labels(sample_dir / "labels" / f"{image.stem}.txt", num_classes=len(SAMPLE_CLASSES))
        assert len(rows) == len(rec["boxes"])
        assert [int(r[0]) for r in rows] == [b["class_id"] for b in rec["boxes"]]


def test_varied_like_real_footage(sample_dir):
    rows = np.concatenate([read_labels(p) for p in sorted((sample_dir / "labels").glob("*.txt"))])
    per_class = Counter(int(c) for c in rows[:, 0])
    assert set(per_class) == set(range(len(SAMPLE_CLASSES)))
    assert min(per_class.values()) >= 0.5 * max(per_class.values())  # roughly balanced
    empty = [p for p in (sample_dir / "labels").glob("*.txt") if not p.read_text().strip()]
    assert 3 <= len(empty) <= 25
    side = np.sqrt(rows[:, 3] * 160 * rows[:, 4] * 120)  # box size in pixels
    assert side.min() < 16 and side.max() > 40  # small through large
    meta = json.loads((sample_dir / "metadata.json").read_text())
    assert {r["substrate"] for r in meta["images"]} == {"sand", "rock", "reef"}
    depths = {r["depth"] for r in meta["images"]}
    assert max(depths) - min(depths) > 0.3
    brightness = [cv2.imread(str(p)).mean() for p in sorted((sample_dir / "images").glob("*.jpg"))[::12]]
    assert max(brightness) - min(brightness) > 15  # shallow and deep dives look different


@pytest.mark.parametrize("kwargs,message", [
    ({"n_images": 0}, "at least 1 labelled image"),
    ({"image_size": (16, 16)}, "at least 32x32"),
])
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(DataError, match=message):
        generate_sample(tmp_path / "s", **kwargs)
    assert not (tmp_path / "s").exists()


def test_existing_output_is_refused(tmp_path):
    (tmp_path / "s").mkdir()
    with pytest.raises(DataError, match="already exists"):
        generate_sample(tmp_path / "s", n_images=2, n_unlabelled=0)


def test_install_into_workspace(tmp_path):
    ws = Workspace.at(tmp_path)
    info = install_sample(ws, n_images=6, n_unlabelled=2)
    assert info.root == ws.fathomnet_dir
    assert len(list(ws.fathomnet_images.glob("*.jpg"))) == 6
    assert len(list(ws.marauder_images.glob("*.jpg"))) == 2
    assert (ws.fathomnet_dir / "classes.txt").is_file() and not (ws.fathomnet_dir / "unlabelled").exists()
    with pytest.raises(DataError, match="already holds data"):
        install_sample(ws, n_images=6, n_unlabelled=2)
