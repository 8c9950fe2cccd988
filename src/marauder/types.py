"""Value types shared by every stage after training.

`Detections` (defined in the numpy core, marauder.runtime.detections, which the edge runtime ships)
is what every model produces for one image; `GroundTruth` is what the evaluator compares it with.
Boxes are absolute pixel xyxy in the original image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .runtime.detections import Detections

__all__ = ["Detections", "GroundTruth", "box_iou"]


@dataclass(frozen=True)
class GroundTruth:
    """Labelled boxes of one image, in the same pixel xyxy convention as Detections."""

    xyxy: np.ndarray
    class_ids: np.ndarray
    image_size: tuple[int, int]
    iscrowd: np.ndarray | None = None  # (N,) bool: COCO crowd regions, ignored by the evaluator

    def __post_init__(self):
        object.__setattr__(self, "xyxy", np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4))
        object.__setattr__(self, "class_ids", np.asarray(self.class_ids, dtype=np.int64).reshape(-1))
        crowd = np.zeros(len(self.class_ids), bool) if self.iscrowd is None else np.asarray(self.iscrowd, bool)
        object.__setattr__(self, "iscrowd", crowd.reshape(-1))

    @property
    def counted(self) -> np.ndarray:
        """Class ids of the boxes that count as objects to find (crowd regions do not)."""
        return self.class_ids[~self.iscrowd]

    def without_crowd(self) -> GroundTruth:
        return GroundTruth(self.xyxy[~self.iscrowd], self.counted, self.image_size)

    def __len__(self) -> int:
        return len(self.class_ids)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N,4) and (M,4) xyxy boxes -> (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
