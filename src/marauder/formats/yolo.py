"""YOLO label files: one `class cx cy w h` line per box, normalised to [0, 1]."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..types import GroundTruth


@dataclass(frozen=True)
class LabelIssue:
    file: str
    line: int
    problem: str
    kind: str = "label"  # fields | value | class | zero_area | bounds (validate-data groups by it)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.problem}"


def parse_label_text(text: str, file: str = "<labels>", num_classes: int | None = None):
    """Parse label text -> (rows (N,5) float array, issues). Bad lines are reported, not kept."""
    rows, issues = [], []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 5:
            issues.append(LabelIssue(file, lineno, f"expected 5 fields (class cx cy w h), got {len(parts)}", "fields"))
            continue
        try:
            values = [float(p) for p in parts]
        except ValueError:
            issues.append(LabelIssue(file, lineno, f"non-numeric field in '{line}'", "value"))
            continue
        cls, cx, cy, w, h = values
        if not np.all(np.isfinite(values)):
            issues.append(LabelIssue(file, lineno, "NaN or infinite value", "value"))
        elif cls != int(cls) or cls < 0:
            issues.append(LabelIssue(file, lineno, f"class id {parts[0]} is not a non-negative integer", "class"))
        elif num_classes is not None and int(cls) >= num_classes:
            issues.append(LabelIssue(file, lineno, f"unknown class id {int(cls)} (dataset has {num_classes})", "class"))
        elif w <= 0 or h <= 0:
            issues.append(LabelIssue(file, lineno, f"zero or negative box size w={w} h={h}", "zero_area"))
        elif min(cx - w / 2, cy - h / 2) < -1e-6 or max(cx + w / 2, cy + h / 2) > 1 + 1e-6:
            issues.append(LabelIssue(file, lineno, "box extends outside the image (coordinates not in [0,1])", "bounds"))
        else:
            rows.append(values)
            continue
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    return arr, issues


def read_labels(path: str | Path, num_classes: int | None = None, strict: bool = True) -> np.ndarray:
    """Read a label file -> (N, 5) [class, cx, cy, w, h]. A missing file means no boxes."""
    path = Path(path)
    if not path.exists():
        return np.zeros((0, 5))
    rows, issues = parse_label_text(path.read_text(encoding="utf-8"), str(path), num_classes)
    if strict and issues:
        raise DataError(issues[0].problem, file=issues[0].file, line=issues[0].line)
    return rows


def format_labels(rows: np.ndarray) -> str:
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    return "".join(
        f"{int(r[0])} {r[1]:.6f} {r[2]:.6f} {r[3]:.6f} {r[4]:.6f}\n" for r in rows
    )


CROWD_SUFFIX = ".crowd.txt"


def crowd_label_path(label_path: str | Path) -> Path:
    """labels/x.txt -> labels/x.crowd.txt: the image's COCO crowd regions (iscrowd 1: a school, a bed of
    urchins boxed as one), same row format. Ultralytics never reads it, as its own COCO converter drops
    crowd boxes; our evaluator ignores detections inside them (pycocotools' semantics)."""
    path = Path(label_path)
    return path.with_name(path.stem + CROWD_SUFFIX)


def is_crowd_file(path: str | Path) -> bool:
    return Path(path).name.endswith(CROWD_SUFFIX)


def rows_to_ground_truth(rows: np.ndarray, image_size: tuple[int, int], crowd_rows=None) -> GroundTruth:
    """YOLO rows (and crowd-region rows) -> GroundTruth in pixel xyxy for an image of (height, width)."""
    h, w = image_size
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    crowd = np.zeros(len(rows), bool)
    if crowd_rows is not None and len(crowd_rows):
        extra = np.asarray(crowd_rows, dtype=np.float64).reshape(-1, 5)
        rows, crowd = np.r_[rows, extra], np.r_[crowd, np.ones(len(extra), bool)]
    cx, cy, bw, bh = rows[:, 1] * w, rows[:, 2] * h, rows[:, 3] * w, rows[:, 4] * h
    xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    return GroundTruth(xyxy, rows[:, 0].astype(np.int64), (h, w), iscrowd=crowd)


def xyxy_to_rows(xyxy: np.ndarray, class_ids: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Pixel xyxy boxes -> YOLO rows, clipped to the image."""
    h, w = image_size
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4).copy()
    xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, w)
    xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, h)
    cx = (xyxy[:, 0] + xyxy[:, 2]) / 2 / w
    cy = (xyxy[:, 1] + xyxy[:, 3]) / 2 / h
    bw = (xyxy[:, 2] - xyxy[:, 0]) / w
    bh = (xyxy[:, 3] - xyxy[:, 1]) / h
    return np.stack([np.asarray(class_ids, dtype=np.float64).reshape(-1), cx, cy, bw, bh], axis=1)


def label_path_for(image_path: str | Path, images_dir: str | Path, labels_dir: str | Path) -> Path:
    """images/<split>/a/b.jpg -> labels/<split>/a/b.txt"""
    rel = Path(image_path).relative_to(images_dir)
    return Path(labels_dir) / rel.with_suffix(".txt")
