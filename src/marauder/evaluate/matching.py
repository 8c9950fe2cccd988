"""Greedy one-to-one matching of one image's detections to its ground truth (IoU >= threshold).

The COCO evaluator (`coco.py`) matches every image at once; this per-image version serves the
operating-point views that need to know *which* box was missed or wrong: the confusion matrix
(class-agnostic) and the worst false negatives / false positives drawn in the report.
"""

from __future__ import annotations

import numpy as np

from ..types import Detections, GroundTruth, box_iou


def greedy_match(det: Detections, gt: GroundTruth, iou_threshold: float = 0.5,
                 class_aware: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Match by descending score; each detection takes the free ground truth it overlaps most.

    Returns (det_to_gt (N,) index or -1, gt_to_det (M,) index or -1, iou (N, M)).
    """
    n, m = len(det), len(gt)
    det_to_gt = np.full(n, -1, dtype=np.int64)
    gt_to_det = np.full(m, -1, dtype=np.int64)
    iou = box_iou(det.xyxy, gt.xyxy)
    if n == 0 or m == 0:
        return det_to_gt, gt_to_det, iou
    allowed = iou >= min(iou_threshold, 1 - 1e-10)
    if class_aware:
        allowed &= det.class_ids[:, None] == gt.class_ids[None, :]
    for d in np.argsort(-det.scores, kind="stable"):
        cand = np.where(allowed[d] & (gt_to_det < 0), iou[d], -1.0)
        g = int(np.argmax(cand))
        if cand[g] >= 0:
            det_to_gt[d], gt_to_det[g] = g, d
    return det_to_gt, gt_to_det, iou


def in_crowd_region(dets: Detections, gt: GroundTruth, threshold: float = 0.5, class_aware: bool = True) -> np.ndarray:
    """Detections lying in a crowd region (of their class when `class_aware`): intersection over the
    detection's own area >= threshold, pycocotools' crowd IoU. Such a detection is neither right nor wrong."""
    crowd = gt.iscrowd
    if len(dets) == 0 or not crowd.any():
        return np.zeros(len(dets), dtype=bool)
    d, g = dets.xyxy.astype(np.float64), gt.xyxy[crowd].astype(np.float64)
    wh = np.clip(np.minimum(d[:, None, 2:], g[None, :, 2:]) - np.maximum(d[:, None, :2], g[None, :, :2]), 0, None)
    area = np.prod(np.clip(d[:, 2:] - d[:, :2], 0, None), axis=1)
    ioa = np.prod(wh, axis=2) / np.maximum(area, 1e-12)[:, None]
    if class_aware:
        ioa = np.where(dets.class_ids[:, None] == gt.class_ids[crowd][None, :], ioa, 0.0)
    return (ioa >= threshold).any(axis=1)
