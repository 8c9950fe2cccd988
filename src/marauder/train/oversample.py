"""Oversampling critical species: a derived training list in which their images repeat.

Ultralytics accepts a .txt file of image paths as a split, and keeps repeated lines as repeated
samples, so oversampling needs no copies of the images: train.txt lists every train image once,
and each image holding a critical species `ratio` times in all. A fractional ratio (e.g. 2.5) gives
every critical image floor(ratio) copies and one more copy to exactly round(frac * n) of them,
chosen by a seeded permutation, so the total is round(ratio * n) (halves round up) and a rerun gives the same list.
val and test keep pointing at the original folders: they are never touched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import yaml

from ..data.dataset import DatasetSpec, iter_split
from ..errors import ConfigError, DataError
from ..formats.yolo import read_labels
from ..fsio import atomic_write_text


@dataclass(frozen=True)
class TrainImage:
    image: Path
    class_ids: frozenset[int]  # classes with at least one box in the image

    def has_any(self, ids: set[int]) -> bool:
        return not self.class_ids.isdisjoint(ids)


def critical_class_ids(class_names: Sequence[str], species: Sequence[str]) -> list[int]:
    """Class indices of the configured critical species; an unknown name is a config error."""
    if not species:
        raise ConfigError("critical_species.species is empty: name at least one class to specialise on")
    unknown = [s for s in species if s not in class_names]
    if unknown:
        raise ConfigError(f"critical_species.species: {', '.join(map(repr, unknown))} not a class of the dataset; "
                          f"its classes are: {', '.join(class_names)}")
    return [list(class_names).index(s) for s in species]


def scan_train_split(spec: DatasetSpec) -> list[TrainImage]:
    """Every train image with the set of classes it contains (labels read leniently, like Ultralytics)."""
    out = []
    for image, label in iter_split(spec, "train"):
        rows = read_labels(label, num_classes=spec.nc, strict=False) if label.is_file() else np.zeros((0, 5))
        out.append(TrainImage(image, frozenset(int(c) for c in np.asarray(rows)[:, 0].tolist()) if len(rows)
                              else frozenset()))
    return out


def repeat_counts(is_critical: Sequence[bool], ratio: float, seed: int) -> list[int]:
    """How often each image appears: 1 for ordinary images; for critical ones floor(ratio), plus one
    for exactly round((ratio - floor(ratio)) * n_critical) of them (halves up; seeded choice)."""
    if ratio < 1:
        raise ConfigError(f"critical_species.oversampling.critical_species_ratio must be >= 1, got {ratio}")
    counts = [1] * len(is_critical)
    critical = [i for i, c in enumerate(is_critical) if c]
    exact = Fraction(str(ratio))  # 1.05 is 21/20 here, not 1.0500000000000000444
    whole = math.floor(exact)
    extra = math.floor((exact - whole) * len(critical) + Fraction(1, 2))  # round half up, exactly
    chosen = set(np.random.default_rng(seed).permutation(len(critical))[:extra].tolist())
    for rank, i in enumerate(critical):
        counts[i] = whole + (1 if rank in chosen else 0)
    return counts


def oversampled_list(images: Sequence[TrainImage], critical_ids: Sequence[int], ratio: float, seed: int
                     ) -> list[Path]:
    """The training list: each image as often as `repeat_counts` says, in the split's order."""
    wanted = set(critical_ids)
    counts = repeat_counts([im.has_any(wanted) for im in images], ratio, seed)
    return [im.image for im, n in zip(images, counts) for _ in range(n)]


def species_image_counts(images: Sequence[TrainImage], class_names: Sequence[str], ids: Sequence[int]
                         ) -> dict[str, int]:
    return {class_names[k]: sum(k in im.class_ids for im in images) for k in ids}


def require_critical_in_train(images: Sequence[TrainImage], class_names: Sequence[str], ids: Sequence[int],
                              spec: DatasetSpec) -> dict[str, int]:
    """Refuse to train when a critical species has no image in the train split (nothing to learn from)."""
    counts = species_image_counts(images, class_names, ids)
    missing = [name for name, n in counts.items() if n == 0]
    if missing:
        raise DataError(f"no image of the train split ({len(images)} images) contains critical species "
                        f"{', '.join(missing)}; add labelled examples or remove them from critical_species.species "
                        "(nothing was trained)", file=str(spec.yaml_path))
    return counts


def write_derived_dataset(spec: DatasetSpec, out_dir: Path, train_list: Sequence[Path]) -> Path:
    """out_dir/train.txt (absolute image paths) and out_dir/dataset.yaml: train from the list, val and
    test exactly as in the original dataset.yaml. Returns the yaml path."""
    out_dir = Path(out_dir)
    if not train_list:
        raise DataError("the derived training list is empty", file=str(spec.yaml_path))
    train_txt = atomic_write_text(out_dir / "train.txt", "".join(f"{Path(p).resolve()}\n" for p in train_list))
    doc: dict = {"path": str(spec.root), "train": str(train_txt.resolve())}
    for split in ("val", "test"):
        if spec.has_split(split):
            entries = [str(p) for p in spec.splits[split]]
            doc[split] = entries[0] if len(entries) == 1 else entries
    doc["names"] = {i: n for i, n in enumerate(spec.names)}
    return atomic_write_text(out_dir / "dataset.yaml", yaml.safe_dump(doc, sort_keys=False))
