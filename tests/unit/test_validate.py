"""validate-data finds every planted defect (with file and line), nothing on clean sets, and
--fix quarantines instead of deleting."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from marauder.data.validate import check_image, quarantine, validate_dataset
from marauder.errors import DataError

NAMES = ["fish", "star"]

# name -> (kind, relative file, line) of each defect planted by `planted` below
PLANTED = {
    "unreadable image": ("unreadable", "images/train/notjpeg.jpg", None),
    "truncated jpeg": ("truncated", "images/train/cut.jpg", None),
    "label with 4 fields": ("fields", "labels/train/t1.txt", 2),
    "non-numeric field": ("value", "labels/train/t2.txt", 1),
    "coordinates outside [0,1]": ("bounds", "labels/val/v0.txt", 1),
    "zero-area box": ("zero_area", "labels/val/v1.txt", 3),
    "unknown class id": ("class", "labels/test/s0.txt", 1),
    "duplicate across splits": ("duplicate", "images/test/dup_of_t0.jpg", None),
    "label without image": ("orphan_label", "labels/val/ghost.txt", None),
}


def _image(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (24, 32, 3), dtype=np.uint8))


def _label(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def make_clean(root: Path) -> Path:
    good = "0 0.5 0.5 0.2 0.2\n1 0.2 0.3 0.1 0.1\n"
    seed = 0
    for split, stems in {"train": ["t0", "t1", "t2"], "val": ["v0", "v1"], "test": ["s0", "s1"]}.items():
        for stem in stems:
            seed += 1  # every image different: duplicates are planted on purpose only
            _image(root / f"images/{split}/{stem}.jpg", seed)
            _label(root / f"labels/{split}/{stem}.txt", good)
    (root / "dataset.yaml").write_text(
        "train: images/train\nval: images/val\ntest: images/test\nnames:\n  0: fish\n  1: star\n")
    return root


@pytest.fixture
def planted(tmp_path) -> Path:
    root = make_clean(tmp_path / "ds")
    (root / "images/train/notjpeg.jpg").write_text("this is not an image")
    data = (root / "images/train/t0.jpg").read_bytes()
    (root / "images/train/cut.jpg").write_bytes(data[: len(data) * 2 // 3])
    _label(root / "labels/train/t1.txt", "0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2\n")
    _label(root / "labels/train/t2.txt", "fish 0.5 0.5 0.2 0.2\n")
    _label(root / "labels/val/v0.txt", "0 1.2 0.5 0.2 0.2\n")
    _label(root / "labels/val/v1.txt", "0 0.5 0.5 0.2 0.2\n\n0 0.5 0.5 0.0 0.2\n")
    _label(root / "labels/test/s0.txt", "7 0.5 0.5 0.2 0.2\n")
    shutil.copy(root / "images/train/t0.jpg", root / "images/test/dup_of_t0.jpg")
    _label(root / "labels/val/ghost.txt", "0 0.5 0.5 0.2 0.2\n")
    return root


def test_every_planted_defect_is_found_with_file_and_line(planted):
    report = validate_dataset(planted, show_progress=False)
    found = {(i.kind, i.file.resolve(), i.line) for i in report.issues}
    for name, (kind, rel, line) in PLANTED.items():
        assert (kind, (planted / rel).resolve(), line) in found, f"missed: {name}"
    assert len(report.issues) == len(PLANTED), [str(i) for i in report.issues]
    assert report.names == NAMES


def test_issue_text_names_file_and_line(planted):
    report = validate_dataset(planted, show_progress=False)
    text = [str(i) for i in report.issues]
    assert any(t.startswith(f"{planted / 'labels/train/t1.txt'}:2: [fields]") for t in text)


def test_fix_quarantines_never_deletes(planted):
    files_before = {p.relative_to(planted) for p in planted.rglob("*") if p.is_file()}
    report = validate_dataset(planted, show_progress=False)
    moved = quarantine(report)
    after = {p.relative_to(planted) for p in planted.rglob("*") if p.is_file()}
    quarantined = {Path(*p.parts[1:]) for p in after if p.parts[0] == "quarantine"}
    # every original file is still somewhere: in place or under quarantine/ with the same relative path
    assert files_before <= (after | quarantined)
    assert moved and all(p.exists() for p in moved)
    for p in moved:
        reason = p.with_name(p.name + ".reason.txt")
        assert reason.is_file() and reason.read_text().strip()
    assert (planted / "quarantine/reasons.jsonl").is_file()
    # bad labels took their image along; the duplicate's first copy (train) stayed
    assert (planted / "quarantine/images/train/t1.jpg").is_file()
    assert (planted / "images/train/t0.jpg").is_file()
    assert validate_dataset(planted, show_progress=False).ok


def test_flat_folder_with_classes_txt(tmp_path):
    root = tmp_path / "flat"
    _image(root / "images/a.jpg", 1)
    _image(root / "images/b.jpg", 2)
    _label(root / "labels/a.txt", "0 0.5 0.5 0.2 0.2\n")
    _label(root / "labels/b.txt", "2 0.5 0.5 0.2 0.2\n")
    (root / "classes.txt").write_text("fish\nstar\n")
    (root / "labels/classes.txt").write_text("fish\nstar\n")  # names, not an orphan label
    report = validate_dataset(root, show_progress=False)
    assert [(i.kind, i.file.name, i.line) for i in report.issues] == [("class", "b.txt", 1)]
    shutil.copy(root / "images/a.jpg", root / "images/c.jpg")  # duplicates inside one split are fine
    assert len(validate_dataset(root, show_progress=False).issues) == 1


def test_classes_txt_not_utf8_is_one_clear_error(tmp_path):
    root = tmp_path / "flat"
    _image(root / "images/a.jpg", 1)
    (root / "classes.txt").write_text("fish\n", encoding="utf-16")
    with pytest.raises(DataError, match="not UTF-8") as info:
        validate_dataset(root, show_progress=False)
    assert info.value.file == str(root / "classes.txt")


def test_missing_dataset_is_an_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        validate_dataset(tmp_path / "nope", show_progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="images/ folder"):
        validate_dataset(tmp_path / "empty", show_progress=False)


@pytest.mark.parametrize("content,kind", [
    (b"", "unreadable"), (b"\xff\xd8\xff\xe0garbage", "unreadable"), (None, None),
])
def test_check_image_table(tmp_path, content, kind):
    path = tmp_path / "x.jpg"
    if content is None:
        _image(path, 0)
    else:
        path.write_bytes(content)
    issue = check_image(path)
    assert (issue.kind if issue else None) in ((kind,) if kind != "unreadable" else ("unreadable", "truncated"))


# ---------------------------------------------------------------- clean sets: nothing found
def test_clean_sample_has_no_issues(sample_dir, organized_sample):
    for target in (sample_dir, organized_sample):
        report = validate_dataset(target, show_progress=False)
        assert report.ok, [str(i) for i in report.issues[:5]]
        assert report.n_images > 0 and report.n_boxes > 0


@pytest.mark.parametrize("name", ["deepfish-det", "underwater-det"])
def test_real_sets_are_clean(shared_data, name):
    report = validate_dataset(shared_data / name, show_progress=False)
    assert report.n_images >= 200 and report.n_boxes > 500
    assert report.ok, [str(i) for i in report.issues[:5]]
