"""YOLO label parsing and conversion, on tiny literal inputs."""

from __future__ import annotations

import numpy as np
import pytest

from marauder.errors import DataError
from marauder.formats.yolo import (
    format_labels,
    label_path_for,
    parse_label_text,
    read_labels,
    rows_to_ground_truth,
    xyxy_to_rows,
)

# (name, label text, num_classes, kept rows, [(line, kind)])
CASES = [
    ("one good box", "0 0.5 0.5 0.2 0.4\n", 3, 1, []),
    ("blank lines are ignored", "\n0 0.5 0.5 0.2 0.4\n\n  \n1 0.1 0.1 0.1 0.1\n", 3, 2, []),
    ("empty file", "", 3, 0, []),
    ("four fields", "0 0.5 0.5 0.2\n", 3, 0, [(1, "fields")]),
    ("six fields", "0 0.5 0.5 0.2 0.2 0.9\n", 3, 0, [(1, "fields")]),
    ("non-numeric", "fish 0.5 0.5 0.2 0.2\n", 3, 0, [(1, "value")]),
    ("nan", "0 nan 0.5 0.2 0.2\n", 3, 0, [(1, "value")]),
    ("fractional class", "1.5 0.5 0.5 0.2 0.2\n", 3, 0, [(1, "class")]),
    ("negative class", "-1 0.5 0.5 0.2 0.2\n", 3, 0, [(1, "class")]),
    ("unknown class", "3 0.5 0.5 0.2 0.2\n", 3, 0, [(1, "class")]),
    ("class check off without nc", "7 0.5 0.5 0.2 0.2\n", None, 1, []),
    ("zero width", "0 0.5 0.5 0 0.2\n", 3, 0, [(1, "zero_area")]),
    ("outside right edge", "0 0.95 0.5 0.2 0.2\n", 3, 0, [(1, "bounds")]),
    ("negative coordinate", "0 -0.1 0.5 0.1 0.1\n", 3, 0, [(1, "bounds")]),
    ("edge-touching box is fine", "0 0.1 0.1 0.2 0.2\n", 3, 1, []),
    ("bad line keeps its own number", "0 0.5 0.5 0.2 0.2\n0 0.5 0.5\n2 0.5 0.5 0.1 0.1\n", 3, 2, [(2, "fields")]),
]


@pytest.mark.parametrize("name,text,nc,kept,problems", CASES, ids=[c[0] for c in CASES])
def test_parse_label_text(name, text, nc, kept, problems):
    rows, issues = parse_label_text(text, "f.txt", nc)
    assert rows.shape == (kept, 5)
    assert [(i.line, i.kind) for i in issues] == problems
    assert all(i.file == "f.txt" for i in issues)


def test_read_labels_strict_raises_with_file_and_line(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2\n")
    with pytest.raises(DataError) as info:
        read_labels(path)
    assert (info.value.file, info.value.line) == (str(path), 2)
    assert read_labels(path, strict=False).shape == (1, 5)


def test_missing_label_file_means_no_boxes(tmp_path):
    assert read_labels(tmp_path / "none.txt").shape == (0, 5)


def test_rows_to_pixels_and_back():
    rows = np.array([[1, 0.5, 0.25, 0.5, 0.5]])
    gt = rows_to_ground_truth(rows, (100, 200))  # height 100, width 200
    np.testing.assert_allclose(gt.xyxy, [[50, 0, 150, 50]])
    assert gt.class_ids.tolist() == [1] and gt.image_size == (100, 200)
    back = xyxy_to_rows(gt.xyxy, gt.class_ids, (100, 200))
    np.testing.assert_allclose(back, rows)


def test_xyxy_to_rows_clips_to_image():
    rows = xyxy_to_rows(np.array([[-10, -10, 50, 50]]), np.array([0]), (100, 100))
    np.testing.assert_allclose(rows, [[0, 0.25, 0.25, 0.5, 0.5]])


def test_format_round_trip():
    rows = np.array([[0, 0.5, 0.5, 0.2, 0.4], [2, 0.1, 0.2, 0.05, 0.05]])
    text = format_labels(rows)
    assert text.splitlines()[0] == "0 0.500000 0.500000 0.200000 0.400000"
    parsed, issues = parse_label_text(text, num_classes=3)
    assert not issues
    np.testing.assert_allclose(parsed, rows)


def test_label_path_for(tmp_path):
    assert label_path_for(tmp_path / "images/train/sub/a.jpg", tmp_path / "images", tmp_path / "labels") == (
        tmp_path / "labels/train/sub/a.txt")
