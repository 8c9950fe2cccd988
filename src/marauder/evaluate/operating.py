"""Precision, recall and F1 per class at operating thresholds, from the COCO matches at IoU 0.5.

Greedy matching goes by descending score, so a detection's match never depends on lower-scored
ones: the matches computed once for mAP are exactly the matches of the detections kept by any
threshold. One matching pass therefore serves every threshold (global or per class).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OperatingPoint:
    thresholds: np.ndarray  # (K,) score threshold per class
    tp: np.ndarray  # (K,)
    fp: np.ndarray  # (K,)
    support: np.ndarray  # (K,) labelled boxes
    tp_per_image: np.ndarray  # (num_images, K)
    gt_per_image: np.ndarray  # (num_images, K)

    @property
    def fn(self) -> np.ndarray:
        return self.support - self.tp

    @property
    def precision(self) -> np.ndarray:
        denom = self.tp + self.fp
        return np.divide(self.tp, denom, out=np.full(len(self.tp), np.nan), where=denom > 0)

    @property
    def recall(self) -> np.ndarray:
        return np.divide(self.tp, self.support, out=np.full(len(self.tp), np.nan), where=self.support > 0)

    @property
    def f1(self) -> np.ndarray:
        p, r = np.nan_to_num(self.precision), np.nan_to_num(self.recall)
        denom = p + r
        f1 = np.divide(2 * p * r, denom, out=np.zeros(len(p)), where=denom > 0)
        return np.where(self.support > 0, f1, np.nan)


def resolve_thresholds(num_classes: int, default: float, per_class=None, class_names=None) -> np.ndarray:
    """Per-class thresholds: a predictor's own (array by class id, or {name: value}) else `default`."""
    out = np.full(num_classes, float(default), dtype=np.float64)
    if per_class is None:
        return out
    if isinstance(per_class, dict):
        for name, value in per_class.items():
            if class_names is not None and name in class_names:
                out[list(class_names).index(name)] = float(value)
        return out
    arr = np.asarray(per_class, dtype=np.float64).reshape(-1)
    n = min(num_classes, arr.size)
    out[:n] = arr[:n]
    return out


def operating_point(matches: dict, gt_classes_per_image: list[np.ndarray], num_classes: int,
                    thresholds: np.ndarray) -> OperatingPoint:
    """Counts at `thresholds` from `coco_metrics(..., return_matches=True)["matches"]` (IoU 0.5, all areas).
    `gt_classes_per_image`: the classes of the boxes to find (`GroundTruth.counted`: no crowd regions)."""
    matched = matches["matched"][0, 0]  # area "all", IoU 0.50
    ignored = matches["ignored"][0, 0]  # matched to a crowd region: neither a true nor a false positive
    cls, img, score = matches["det_class"], matches["det_image"], matches["det_score"]
    kept = (score >= thresholds[cls]) & ~ignored
    n_img = len(gt_classes_per_image)
    tp_img = np.zeros((n_img, num_classes), dtype=np.int64)
    hit = kept & matched
    np.add.at(tp_img, (img[hit], cls[hit]), 1)
    fp = np.bincount(cls[kept & ~matched], minlength=num_classes)
    gt_img = np.zeros((n_img, num_classes), dtype=np.int64)
    for i, classes in enumerate(gt_classes_per_image):
        if len(classes):
            gt_img[i] = np.bincount(classes, minlength=num_classes)
    return OperatingPoint(np.asarray(thresholds, dtype=np.float64), tp_img.sum(0), fp, gt_img.sum(0), tp_img, gt_img)
