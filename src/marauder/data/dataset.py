"""Read an Ultralytics-style dataset: dataset.yaml, its splits, and each image's ground truth.

Shared by every stage that walks labelled data (evaluation, calibration, active learning, ...), so
the label-path rule and the yaml quirks (names as list or dict, split as folder, list or .txt) live
in one place.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import DataError, MissingInputError
from ..formats.yolo import crowd_label_path, read_labels, rows_to_ground_truth
from ..fsio import IMAGE_SUFFIXES, list_images
from ..types import GroundTruth

SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed dataset.yaml: class names and, per split, the image folders (or files) it lists."""

    yaml_path: Path
    root: Path
    names: list[str]
    splits: dict[str, list[Path]] = field(default_factory=dict)

    @property
    def nc(self) -> int:
        return len(self.names)

    def has_split(self, split: str) -> bool:
        return bool(self.splits.get(split))


def _names(raw, path: Path) -> list[str]:
    if isinstance(raw, dict):
        try:
            keys = sorted(int(k) for k in raw)
        except (TypeError, ValueError):
            raise DataError(f"'names' keys must be class indices, got {list(raw)[:5]}", file=str(path)) from None
        if keys != list(range(len(keys))):
            raise DataError(f"'names' indices must be 0..{len(keys) - 1} without gaps", file=str(path))
        return [str(raw[k] if k in raw else raw[str(k)]) for k in keys]
    if isinstance(raw, list) and raw:
        return [str(n) for n in raw]
    raise DataError("'names' must be a non-empty list or an {index: name} mapping", file=str(path))


def load_dataset_yaml(path: str | Path) -> DatasetSpec:
    """Parse dataset.yaml. Relative split entries resolve against `path:` (itself relative to the yaml)."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(path, "marauder organize")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=str(path)) from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        raise DataError(f"not valid YAML: {getattr(exc, 'problem', exc)}", file=str(path),
                        line=None if line is None else line + 1) from None
    if not isinstance(doc, dict):
        raise DataError("expected a mapping with 'names' and 'train'/'val'/'test'", file=str(path))
    if "names" not in doc:
        raise DataError("missing 'names' (the class list)", file=str(path))
    names = _names(doc["names"], path)
    if "nc" in doc:
        try:
            nc = int(doc["nc"])
        except (TypeError, ValueError):
            raise DataError(f"'nc' must be a whole number, got {doc['nc']!r}", file=str(path)) from None
        if nc != len(names):
            raise DataError(f"'nc' is {doc['nc']} but 'names' lists {len(names)} classes", file=str(path))
    root = Path(doc.get("path") or ".")
    if not root.is_absolute():
        root = (path.parent / root).resolve()
    splits: dict[str, list[Path]] = {}
    for split in SPLIT_NAMES:
        entry = doc.get(split)
        if entry in (None, "", []):
            continue
        entries = entry if isinstance(entry, list) else [entry]
        splits[split] = [p if p.is_absolute() else root / p for p in (Path(str(e)) for e in entries)]
    if not splits:
        raise DataError("no split listed (expected at least one of train, val, test)", file=str(path))
    return DatasetSpec(path, root, names, splits)


def label_path_for_image(image_path: str | Path) -> Path:
    """Ultralytics' rule: the last '/images/' in the path becomes '/labels/', suffix becomes .txt."""
    parts = list(Path(image_path).parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def split_images(spec: DatasetSpec, split: str) -> list[Path]:
    """Every image of a split, sorted. A split the yaml lists but that does not exist is an error."""
    if split not in SPLIT_NAMES:
        raise DataError(f"unknown split '{split}' (expected one of {', '.join(SPLIT_NAMES)})")
    if not spec.has_split(split):
        raise DataError(f"dataset has no '{split}' split", file=str(spec.yaml_path))
    images: list[Path] = []
    for entry in spec.splits[split]:
        if entry.is_dir():
            images.extend(list_images(entry, recursive=True))
        elif entry.is_file() and entry.suffix == ".txt":  # a list of image paths, one per line
            for line in entry.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    p = Path(line.strip())
                    images.append(p if p.is_absolute() else (spec.root / p))
        elif entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES:
            images.append(entry)
        else:
            raise DataError(f"'{split}' points to {entry}, which does not exist", file=str(spec.yaml_path))
    return sorted(images)


def iter_split(spec: DatasetSpec, split: str) -> Iterator[tuple[Path, Path]]:
    """(image_path, label_path) for every image of a split; the label file may be absent (no boxes)."""
    for image in split_images(spec, split):
        yield image, label_path_for_image(image)


def image_size(image_path: str | Path) -> tuple[int, int]:
    """(height, width) from the file header without decoding pixels where possible."""
    try:
        from PIL import Image

        with Image.open(image_path) as im:
            w, h = im.size
        return int(h), int(w)
    except Exception as exc:  # PIL raises many types for bad files
        raise DataError(f"cannot read image: {exc}", file=str(image_path)) from None


def read_ground_truth(image_path: str | Path, label_path: str | Path | None = None,
                      num_classes: int | None = None, size: tuple[int, int] | None = None) -> GroundTruth:
    """Labels of one image as pixel xyxy, with its crowd regions (`crowd_label_path`) flagged.
    `size` is (height, width); read from the image if omitted."""
    label_path = label_path_for_image(image_path) if label_path is None else Path(label_path)
    rows = read_labels(label_path, num_classes=num_classes, strict=True)
    crowd = read_labels(crowd_label_path(label_path), num_classes=num_classes, strict=True)
    return rows_to_ground_truth(rows, size or image_size(image_path), crowd)
