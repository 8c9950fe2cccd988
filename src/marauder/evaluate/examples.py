"""The worst misses and false alarms of the critical species, cropped while each image is in memory.

Images are decoded once: while the evaluator holds a batch, `WorstCases.add` matches that image at
the operating thresholds and keeps small annotated crops of its critical-species errors in two
bounded heaps. Nothing else of the image is kept.

Severity: a false negative is worse the less the model believed in it (1 - the best score of a
same-class detection overlapping it at IoU >= 0.5, any score); a false positive is worse the more
confident it was.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass

import numpy as np

from ..types import Detections, GroundTruth, box_iou
from .matching import greedy_match, in_crowd_region

GT_COLOR = (60, 200, 60)  # BGR green: the labelled box
PRED_COLOR = (40, 40, 230)  # BGR red: the detection


@dataclass(frozen=True)
class ErrorExample:
    kind: str  # "FN" or "FP"
    image: str
    class_name: str
    score: float  # FN: best overlapping score (0 if none); FP: detection score
    box: tuple[float, float, float, float]
    crop: np.ndarray  # RGB uint8 thumbnail with the box drawn

    def caption(self) -> str:
        return f"{self.kind} {self.class_name} s={self.score:.2f}"

    def to_record(self) -> dict:
        return {"kind": self.kind, "image": self.image, "class_name": self.class_name,
                "score": round(self.score, 4), "box": [round(v, 1) for v in self.box]}


def _crop(image: np.ndarray, box, color, size: int = 160) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half = max(x2 - x1, y2 - y1, 16.0) * 0.9  # the box plus context around it
    left, top = int(max(0, cx - half)), int(max(0, cy - half))
    right, bottom = int(min(w, cx + half)), int(min(h, cy + half))
    patch = image[top:bottom, left:right].copy()
    if patch.size == 0:
        patch = np.zeros((size, size, 3), dtype=np.uint8)
        return patch
    scale = size / max(patch.shape[:2])
    patch = cv2.resize(patch, (max(1, round(patch.shape[1] * scale)), max(1, round(patch.shape[0] * scale))),
                       interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    p1 = (round((x1 - left) * scale), round((y1 - top) * scale))
    p2 = (round((x2 - left) * scale), round((y2 - top) * scale))
    cv2.rectangle(patch, p1, p2, color, 2)
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    canvas[:patch.shape[0], :patch.shape[1]] = patch
    return canvas[:, :, ::-1].copy()  # BGR -> RGB for matplotlib


class WorstCases:
    """Keeps the `limit` worst false negatives and false positives of the critical classes."""

    def __init__(self, critical_ids: list[int], class_names: list[str], thresholds: np.ndarray,
                 limit: int = 8, iou_threshold: float = 0.5):
        self.critical = np.asarray(sorted(critical_ids), dtype=np.int64)
        self.class_names = class_names
        self.thresholds = thresholds
        self.limit = limit
        self.iou_threshold = iou_threshold
        self._fn: list = []
        self._fp: list = []
        self._tie = itertools.count()

    def _push(self, heap: list, severity: float, make) -> None:
        if self.limit <= 0:
            return
        if len(heap) < self.limit:
            heapq.heappush(heap, (severity, next(self._tie), make()))
        elif severity > heap[0][0]:
            heapq.heapreplace(heap, (severity, next(self._tie), make()))

    def add(self, image_name: str, image: np.ndarray, det: Detections, gt: GroundTruth) -> None:
        if self.critical.size == 0 or self.limit <= 0:
            return
        kept = det.filter(self.thresholds)
        crowded = in_crowd_region(kept, gt, self.iou_threshold)  # neither right nor wrong
        gt = gt.without_crowd()
        det_to_gt, gt_to_det, _ = greedy_match(kept, gt, self.iou_threshold, class_aware=True)
        missed = np.flatnonzero((gt_to_det < 0) & np.isin(gt.class_ids, self.critical))
        # overlap with every detection, below threshold too: how close the model came to each miss
        iou_all = box_iou(det.xyxy, gt.xyxy[missed]) if missed.size else None
        for j, g in enumerate(missed):
            near = (det.class_ids == gt.class_ids[g]) & (iou_all[:, j] >= self.iou_threshold)
            best = float(det.scores[near].max()) if near.any() else 0.0
            box, name = tuple(gt.xyxy[g].tolist()), self.class_names[gt.class_ids[g]]
            self._push(self._fn, 1.0 - best + 1e-9 * (box[2] - box[0]) * (box[3] - box[1]),
                       lambda box=box, name=name, best=best: ErrorExample(
                           "FN", image_name, name, best, box, _crop(image, box, GT_COLOR)))
        for d in np.flatnonzero((det_to_gt < 0) & ~crowded & np.isin(kept.class_ids, self.critical)):
            box, name, score = tuple(kept.xyxy[d].tolist()), self.class_names[kept.class_ids[d]], float(kept.scores[d])
            self._push(self._fp, score,
                       lambda box=box, name=name, score=score: ErrorExample(
                           "FP", image_name, name, score, box, _crop(image, box, PRED_COLOR)))

    @property
    def false_negatives(self) -> list[ErrorExample]:
        return [e for _, _, e in sorted(self._fn, key=lambda t: (-t[0], t[1]))]

    @property
    def false_positives(self) -> list[ErrorExample]:
        return [e for _, _, e in sorted(self._fp, key=lambda t: (-t[0], t[1]))]
