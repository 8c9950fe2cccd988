"""Tiny detection sets written on the fly for tests that need a dataset.yaml in milliseconds."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def make_yolo_set(root: Path, n_train: int = 6, n_val: int = 3, size: int = 64) -> Path:
    """Orange boxes on blue water, YOLO labels, dataset.yaml: the smallest real detection set."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = np.full((size, size, 3), (120, 90, 30), np.uint8)
            x, y = (int(v) for v in rng.integers(4, size // 2, 2))
            w, h = (int(v) for v in rng.integers(14, size // 2, 2))
            cv2.rectangle(img, (x, y), (x + w, y + h), (0, 160, 255), -1)
            cv2.imwrite(str(root / "images" / split / f"{split}{i}.jpg"), img)
            (root / "labels" / split / f"{split}{i}.txt").write_text(
                f"0 {(x + w / 2) / size:.5f} {(y + h / 2) / size:.5f} {w / size:.5f} {h / size:.5f}\n")
    (root / "dataset.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n  0: fish\n")
    return root / "dataset.yaml"
