"""Confusion matrix with a background row and column, at an operating threshold and IoU 0.5.

Rows are predicted classes, columns true classes; index `num_classes` is background. A detection
matched (class-agnostic, IoU >= threshold) to a labelled box lands in [pred, true]; an unmatched
detection is a false alarm [pred, background]; an unmatched label is a miss [background, true].
Crowd regions are neither: a detection inside one is not counted, and the region is not a miss.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..types import Detections, GroundTruth
from .matching import greedy_match, in_crowd_region


def confusion_matrix(predictions: Sequence[Detections], ground_truths: Sequence[GroundTruth], num_classes: int,
                     thresholds: float | np.ndarray = 0.25, iou_threshold: float = 0.5) -> np.ndarray:
    """(K+1, K+1) int64 counts; `thresholds` is one score or one per class id."""
    bg = num_classes
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for det, gt in zip(predictions, ground_truths):
        det = det.filter(thresholds)
        det_to_gt, gt_to_det, _ = greedy_match(det, gt.without_crowd(), iou_threshold, class_aware=False)
        hit = det_to_gt >= 0
        false_alarm = ~hit & ~in_crowd_region(det, gt, iou_threshold, class_aware=False)
        gt = gt.without_crowd()
        np.add.at(matrix, (det.class_ids[hit], gt.class_ids[det_to_gt[hit]]), 1)
        np.add.at(matrix, (det.class_ids[false_alarm], bg), 1)
        np.add.at(matrix, (bg, gt.class_ids[gt_to_det < 0]), 1)
    return matrix
