"""Oversampling: exact repeat counts for integer and fractional ratios, seeded, val/test untouched."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from marauder.data.dataset import load_dataset_yaml, split_images
from marauder.errors import ConfigError, DataError
from marauder.train.oversample import (
    TrainImage,
    critical_class_ids,
    oversampled_list,
    repeat_counts,
    require_critical_in_train,
    scan_train_split,
    write_derived_dataset,
)


@pytest.mark.parametrize(("n_critical", "n_other", "ratio", "critical_total"), [
    (4, 6, 1.0, 4),
    (4, 6, 3.0, 12),
    (4, 6, 2.5, 10),     # 4 x 2 + round(0.5 * 4) = 10
    (3, 2, 2.5, 8),      # 3 x 2 + round(1.5) = 8
    (7, 0, 1.3, 9),      # 7 + round(2.1) = 9
    (10, 5, 1.05, 11),   # 10 + round(0.5): halves round up, computed exactly (not 0.50000000000004)
    (10, 5, 1.25, 13),   # 10 + round(2.5) = 13
    (0, 5, 3.0, 0),
])
def test_repeat_counts_are_exact(n_critical, n_other, ratio, critical_total):
    flags = [True] * n_critical + [False] * n_other
    counts = repeat_counts(flags, ratio, seed=0)
    assert sum(c for c, f in zip(counts, flags) if f) == critical_total
    assert all(c == 1 for c, f in zip(counts, flags) if not f)
    assert all(int(ratio) <= c <= int(ratio) + 1 for c, f in zip(counts, flags) if f)


@pytest.mark.parametrize("ratio", [1.5, 2.25, 3.7])
def test_fractional_choice_is_seeded(ratio):
    flags = [i % 2 == 0 for i in range(40)]
    assert repeat_counts(flags, ratio, seed=3) == repeat_counts(flags, ratio, seed=3)
    assert repeat_counts(flags, ratio, seed=3) != repeat_counts(flags, ratio, seed=4)


def test_ratio_below_one_is_refused():
    with pytest.raises(ConfigError):
        repeat_counts([True], 0.5, seed=0)


@pytest.mark.parametrize(("species", "ok"), [(["b"], True), (["c", "a"], True), (["zebra"], False), ([], False)])
def test_critical_names_must_be_classes(species, ok):
    if ok:
        assert critical_class_ids(["a", "b", "c"], species) == [["a", "b", "c"].index(s) for s in species]
    else:
        with pytest.raises(ConfigError) as err:
            critical_class_ids(["a", "b", "c"], species)
        if species:
            assert "zebra" in str(err.value) and "a, b, c" in str(err.value)  # lists the dataset's classes


def _dataset(root: Path, train: dict[str, list[int]], val: dict[str, list[int]]) -> Path:
    for split, items in (("train", train), ("val", val)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for name, classes in items.items():
            (root / "images" / split / f"{name}.jpg").write_bytes(b"\xff\xd8not-decoded-here")
            (root / "labels" / split / f"{name}.txt").write_text(
                "".join(f"{c} 0.5 0.5 0.2 0.2\n" for c in classes))
    (root / "dataset.yaml").write_text(yaml.safe_dump(
        {"path": str(root), "train": "images/train", "val": "images/val", "names": ["fish", "lionfish", "urchin"]}))
    return root / "dataset.yaml"


def test_derived_dataset_repeats_train_only(tmp_path):
    data = _dataset(tmp_path / "d", {"a": [1], "b": [0], "c": [0, 1], "d": [], "e": [2]}, {"v1": [1], "v2": [0]})
    spec = load_dataset_yaml(data)
    images = scan_train_split(spec)
    ids = critical_class_ids(spec.names, ["lionfish"])
    assert require_critical_in_train(images, spec.names, ids, spec) == {"lionfish": 2}
    entries = oversampled_list(images, ids, 2.5, seed=0)
    counts = Counter(p.stem for p in entries)
    assert counts["b"] == counts["d"] == counts["e"] == 1
    assert counts["a"] + counts["c"] == 5 and {counts["a"], counts["c"]} == {2, 3}

    derived = write_derived_dataset(spec, tmp_path / "out", entries)
    out = load_dataset_yaml(derived)
    assert split_images(out, "train") == sorted(entries)
    assert split_images(out, "val") == split_images(spec, "val")  # val untouched
    assert out.names == spec.names


def test_no_critical_species_in_train_is_refused(tmp_path):
    data = _dataset(tmp_path / "d", {"a": [0], "b": [2]}, {"v": [1]})
    spec = load_dataset_yaml(data)
    with pytest.raises(DataError, match="lionfish.*nothing was trained"):
        require_critical_in_train(scan_train_split(spec), spec.names, [1], spec)


def test_trainimage_membership():
    im = TrainImage(Path("x.jpg"), frozenset({0, 2}))
    assert im.has_any({2}) and not im.has_any({1})
