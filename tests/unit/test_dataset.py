"""dataset.yaml reading, split iteration and ground truth (the shared dataset access)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from marauder.data.dataset import (
    iter_split,
    label_path_for_image,
    load_dataset_yaml,
    read_ground_truth,
    split_images,
)
from marauder.errors import DataError, MissingInputError

# (name, yaml text, expected names or error fragment)
YAMLS = [
    ("names as mapping", "train: images/train\nnames:\n  0: a\n  1: b\n", ["a", "b"]),
    ("names as list", "train: images/train\nnames: [a, b]\n", ["a", "b"]),
    ("nc disagrees", "train: images/train\nnc: 3\nnames: [a, b]\n", "'nc' is 3"),
    ("no names", "train: images/train\n", "missing 'names'"),
    ("gap in names", "train: images/train\nnames:\n  0: a\n  2: c\n", "without gaps"),
    ("no split", "names: [a]\n", "no split listed"),
    ("not a mapping", "- a\n", "expected a mapping"),
    ("broken yaml", "names: [a\n", "not valid YAML"),
    ("nc not a number", "train: images/train\nnc: abc\nnames: [a]\n", "'nc' must be a whole number"),
]


@pytest.mark.parametrize("name,text,expected", YAMLS, ids=[y[0] for y in YAMLS])
def test_load_dataset_yaml(tmp_path, name, text, expected):
    path = tmp_path / "dataset.yaml"
    path.write_text(text)
    if isinstance(expected, list):
        spec = load_dataset_yaml(path)
        assert spec.names == expected and spec.root == tmp_path
        assert spec.splits["train"] == [tmp_path / "images/train"]
    else:
        with pytest.raises(DataError) as info:
            load_dataset_yaml(path)
        assert expected in str(info.value) and info.value.file == str(path)


def test_yaml_that_is_not_utf8_is_one_clear_error(tmp_path):
    path = tmp_path / "dataset.yaml"
    path.write_bytes(b"\xff\xfe\x00names: [a]\n")
    with pytest.raises(DataError, match="not UTF-8") as info:
        load_dataset_yaml(path)
    assert info.value.file == str(path)


def test_missing_yaml_names_the_command(tmp_path):
    with pytest.raises(MissingInputError, match="marauder organize"):
        load_dataset_yaml(tmp_path / "dataset.yaml")


def test_path_key_and_missing_split(tmp_path):
    (tmp_path / "elsewhere/images/val").mkdir(parents=True)
    (tmp_path / "d.yaml").write_text("path: elsewhere\ntrain: images/train\nval: images/val\nnames: [a]\n")
    spec = load_dataset_yaml(tmp_path / "d.yaml")
    assert spec.root == tmp_path / "elsewhere"
    assert split_images(spec, "val") == []
    with pytest.raises(DataError, match="does not exist"):
        split_images(spec, "train")
    with pytest.raises(DataError, match="no 'test' split"):
        list(iter_split(spec, "test"))
    with pytest.raises(DataError, match="unknown split"):
        split_images(spec, "holdout")


@pytest.mark.parametrize("image,label", [
    ("d/images/train/a.jpg", "d/labels/train/a.txt"),
    ("images/x/images/val/b.png", "images/x/labels/val/b.txt"),  # the last images/ wins
    ("d/imgs/c.jpg", "d/imgs/c.txt"),
])
def test_label_path_rule(image, label):
    assert label_path_for_image(Path(image)) == Path(label)


def test_iter_and_ground_truth_on_the_sample(organized_sample):
    spec = load_dataset_yaml(organized_sample / "dataset.yaml")
    assert spec.names[0] == "lionfish" and spec.nc == 5
    pairs = list(iter_split(spec, "val"))
    assert pairs and all(img.is_file() and lbl.is_file() for img, lbl in pairs)
    n_boxes = 0
    for img, lbl in pairs:
        gt = read_ground_truth(img, lbl, num_classes=spec.nc)
        assert gt.image_size == (120, 160)
        assert np.all(gt.xyxy[:, 2:] > gt.xyxy[:, :2]) and np.all(gt.xyxy >= 0)
        assert np.all(gt.xyxy[:, [0, 2]] <= 160) and np.all(gt.xyxy[:, [1, 3]] <= 120)
        n_boxes += len(gt)
    assert n_boxes > 0


def test_ground_truth_bad_label_names_line(tmp_path, sample_dir):
    img = sample_dir / "images/dive01_frame0000.jpg"
    bad = tmp_path / "bad.txt"
    bad.write_text("0 0.5 0.5 0.1 0.1\n0 0.5\n")
    with pytest.raises(DataError) as info:
        read_ground_truth(img, bad)
    assert (info.value.file, info.value.line) == (str(bad), 2)
    assert len(read_ground_truth(img, tmp_path / "absent.txt")) == 0
