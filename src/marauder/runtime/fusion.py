"""Ensemble fusion in numpy: weighted boxes fusion (WBF), NMS and Gaussian soft-NMS.

`fuse` takes one image's `Detections` from several sources (ensemble members, TTA views) and returns
one `Detections` in pixels; the training-side pipeline, the ensemble stage, the HTTP service and the
edge runtime all call it. WBF follows ensemble-boxes (ZFTurbo) step by step, including its float32
rounding of fused boxes (the unit tests keep that library as the oracle); the array-level functions
take boxes normalised to [0, 1], one (boxes, scores, labels) triple per source.

Order of operations in `fuse`, for every method:
  1. each source's own confidence threshold (`conf_thresholds[i]`, a float or one per class id);
  2. `skip_box_threshold` on the raw scores;
  3. the fusion itself, per class.

Weights: WBF uses ensemble-boxes' semantics (a box found by one of three equally weighted models
keeps a third of its score with conf_type="avg": agreement is rewarded). For NMS and soft-NMS a
source's scores are scaled by weight / max(weights), so equal weights leave scores unchanged
(ensemble-boxes would divide them by the sum of the weights). Not ensemble-boxes' nms_method: its
soft-NMS returns the undecayed scores (it only drops boxes, never re-ranks them).
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

import numpy as np

from .detections import Detections

CONF_TYPES = ("avg", "max", "box_and_model_avg", "absent_model_aware_avg")


def _prefilter(boxes_list, scores_list, labels_list, weights, thr) -> dict:
    """label -> rows [label, weighted score, weight, model index, x1, y1, x2, y2], best score first.
    ensemble-boxes' prefilter, vectorised: the same rows in the same order (sources, then boxes),
    labels in order of first appearance, the same argsort."""
    parts = []
    for t, (boxes, scores, labels) in enumerate(zip(boxes_list, scores_list, labels_list)):
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if not len(boxes):
            continue
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        xy = np.clip(np.stack([np.minimum(boxes[:, 0], boxes[:, 2]), np.minimum(boxes[:, 1], boxes[:, 3]),
                               np.maximum(boxes[:, 0], boxes[:, 2]), np.maximum(boxes[:, 1], boxes[:, 3])], 1),
                     0.0, 1.0)
        keep = (scores >= thr) & ((xy[:, 2] - xy[:, 0]) * (xy[:, 3] - xy[:, 1]) != 0.0)  # zero area: no location
        n = int(keep.sum())
        if n:
            label = np.asarray(labels).reshape(-1)[keep].astype(np.int64).astype(np.float64)
            parts.append(np.column_stack([label, scores[keep] * weights[t], np.full(n, weights[t]),
                                          np.full(n, float(t)), xy[keep]]))
    if not parts:
        return {}
    rows = np.concatenate(parts)
    labels, first = np.unique(rows[:, 0], return_index=True)
    grouped = {}
    for label in labels[np.argsort(first)]:
        group = rows[rows[:, 0] == label]
        grouped[int(label)] = group[group[:, 1].argsort()[::-1]]
    return grouped


def _cluster_label(rows: np.ndarray, iou_thr: float, conf_type: str) -> tuple[np.ndarray, list[list[int]]]:
    """One label's rows (best first) -> fused rows and each cluster's member rows.

    ensemble-boxes recomputes a cluster's box from all its members at every addition; the running
    sums here add the same products in the same order, in float32 as it does (an `array('f')` rounds
    what is stored in it exactly as numpy's cast does), so the boxes are bit-identical at a constant
    cost each. Only the IoU against the clusters so far is numpy; the rest is scalar Python, which is
    faster than numpy on single values."""
    n = len(rows)
    x1, y1, x2, y2, area = (np.empty(n) for _ in range(5))  # the fused boxes so far
    fused: list[list[float]] = []  # a cluster of one keeps its raw row, as in ensemble-boxes
    sums = array("f", bytes(16 * n))  # per cluster: score-weighted x1, y1, x2, y2 in float32
    f32 = array("f", [0.0])  # storing a float here rounds it to float32
    conf, best, weight = [0.0] * n, [0.0] * n, [0.0] * n
    members: list[list[int]] = []
    raw = rows.tolist()
    for j, (label, score, w, _t, bx1, by1, bx2, by2) in enumerate(raw):
        m = index = len(members)
        if m:
            inter = (np.maximum(np.minimum(x2[:m], bx2) - np.maximum(x1[:m], bx1), 0)
                     * np.maximum(np.minimum(y2[:m], by2) - np.maximum(y1[:m], by1), 0))
            iou = inter / (area[:m] + (bx2 - bx1) * (by2 - by1) - inter)
            k = int(iou.argmax())
            if iou[k] > iou_thr:
                index = k
        c = 4 * index
        for i, v in enumerate((bx1, by1, bx2, by2)):
            sums[c + i] = sums[c + i] + score * v
        conf[index] += score
        best[index] = max(best[index], score)
        weight[index] += w
        if index == m:
            members.append([j])
            fused.append(raw[j])
            box = [bx1, by1, bx2, by2]
        else:
            members[index].append(j)
            box = []
            for i in range(4):
                f32[0] = sums[c + i] / conf[index]
                box.append(f32[0])
            f32[0] = best[index] if conf_type == "max" else conf[index] / len(members[index])
            fused_score = f32[0]
            f32[0] = weight[index]
            fused[index] = [label, fused_score, f32[0], -1.0, *box]
        x1[index], y1[index], x2[index], y2[index] = box
        area[index] = (box[2] - box[0]) * (box[3] - box[1])
    return np.array(fused, dtype=np.float64).reshape(-1, 8), members


def weighted_boxes_fusion(boxes_list, scores_list, labels_list, weights=None, iou_thr: float = 0.55,
                          skip_box_thr: float = 0.0, conf_type: str = "avg", allows_overflow: bool = False):
    """Fuse per-model detections: (boxes (N,4), scores (N,), labels (N,)) sorted by score."""
    if conf_type not in CONF_TYPES:
        raise ValueError(f"unknown conf_type '{conf_type}', expected one of {CONF_TYPES}")
    if weights is None or len(weights) != len(boxes_list):
        weights = np.ones(len(boxes_list))
    weights = np.asarray(weights, dtype=np.float64)
    grouped = _prefilter(boxes_list, scores_list, labels_list, weights, skip_box_thr)
    if not grouped:
        return np.zeros((0, 4)), np.zeros((0,)), np.zeros((0,))
    overall = []
    for label in grouped:
        rows = grouped[label]
        fused, members = _cluster_label(rows, iou_thr, conf_type)
        for i, m in enumerate(members):
            if conf_type == "box_and_model_avg":
                cluster = rows[m]
                fused[i, 1] = fused[i, 1] * len(m) / fused[i, 2]
                _, idx = np.unique(cluster[:, 3], return_index=True)
                fused[i, 1] = fused[i, 1] * cluster[idx, 2].sum() / weights.sum()
            elif conf_type == "absent_model_aware_avg":
                present = np.unique(rows[m, 3]).astype(int)
                absent = np.ones(len(weights), dtype=bool)
                absent[present] = False
                fused[i, 1] = fused[i, 1] * len(m) / (fused[i, 2] + weights[absent].sum())
            elif conf_type == "max":
                fused[i, 1] = fused[i, 1] / weights.max()
            elif not allows_overflow:
                fused[i, 1] = fused[i, 1] * min(len(weights), len(m)) / weights.sum()
            else:
                fused[i, 1] = fused[i, 1] * len(m) / weights.sum()
        overall.append(fused)
    allrows = np.concatenate(overall, axis=0)
    allrows = allrows[allrows[:, 1].argsort()[::-1]]
    return allrows[:, 4:], allrows[:, 1], allrows[:, 0]


def _iou_one(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    tl = np.maximum(box[:2], boxes[:, :2])
    br = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=1)
    area = np.prod(np.clip(box[2:] - box[:2], 0, None))
    areas = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms_fusion(boxes_list, scores_list, labels_list, weights=None, iou_thr: float = 0.55,
               soft: bool = False, sigma: float = 0.5, skip_box_thr: float = 0.001):
    """Class-wise greedy NMS or Gaussian soft-NMS over every source's boxes.

    A source's scores are scaled by
    weight / max(weights); soft-NMS decays overlapping scores and drops those below `skip_box_thr`.
    """
    scores_list = [np.asarray(s, dtype=np.float64).reshape(-1) for s in scores_list]
    if weights is not None:
        top = float(max(weights))
        scores_list = [s * (float(w) / top) for s, w in zip(scores_list, weights)]
    boxes = np.concatenate([np.asarray(b, dtype=np.float64).reshape(-1, 4) for b in boxes_list])
    scores = np.concatenate(scores_list)
    labels = np.concatenate([np.asarray(v, dtype=np.float64).reshape(-1) for v in labels_list])
    kept_b, kept_s, kept_l = [], [], []
    for label in np.unique(labels):
        sel = labels == label
        b, s = boxes[sel], scores[sel].copy()
        order = np.argsort(-s, kind="stable")
        b, s = b[order], s[order]
        while len(s):
            best = int(np.argmax(s))  # first maximum: ties keep the earlier source's box
            kept_b.append(b[best])
            kept_s.append(s[best])
            kept_l.append(label)
            rest = np.arange(len(s)) != best
            iou = _iou_one(b[best], b[rest])
            b, s = b[rest], s[rest]
            if soft:
                s = s * np.exp(-(iou * iou) / sigma)
                keep = s >= skip_box_thr
            else:
                keep = iou <= iou_thr
            b, s = b[keep], s[keep]
    return np.array(kept_b).reshape(-1, 4), np.array(kept_s), np.array(kept_l)


# -- one image's detections from several sources (models x TTA views) ------------------------------
METHODS = ("wbf", "nms", "soft_nms")


def fuse(
    detections_per_source: Sequence[Detections],
    method: str = "wbf",
    iou_threshold: float = 0.55,
    skip_box_threshold: float = 0.001,
    weights: Sequence[float] | None = None,
    conf_type: str = "avg",
    conf_thresholds: Sequence[float | np.ndarray | None] | None = None,
    *,
    sigma: float = 0.5,
    image_size: tuple[int, int] | None = None,
) -> Detections:
    """Fuse one image's detections from several sources into one `Detections` (pixel xyxy).

    Args:
        detections_per_source: one `Detections` per source, all of the same image.
        method: "wbf" (Weighted Boxes Fusion), "nms" or "soft_nms" (Gaussian).
        iou_threshold: IoU at which two boxes of the same class are the same object.
        skip_box_threshold: boxes scoring below this are ignored (and soft-NMS drops below it).
        weights: one weight per source; None = equal.
        conf_type: how WBF scores a fused box (ensemble-boxes' options).
        conf_thresholds: per source, applied first: a float, per-class array, or None (keep all).
        sigma: Gaussian soft-NMS sigma.
        image_size: (height, width); default: the sources' own `image_size`.

    Raises:
        ValueError: no sources, mismatched lengths/image sizes, unknown method or conf_type.
    """
    sources = list(detections_per_source)
    if not sources:
        raise ValueError("fuse: at least one source is needed")
    if method not in METHODS:
        raise ValueError(f"fuse: unknown method '{method}'; expected one of {METHODS}")
    if conf_type not in CONF_TYPES:
        raise ValueError(f"fuse: unknown conf_type '{conf_type}'; expected one of {CONF_TYPES}")
    if weights is not None and len(weights) != len(sources):
        raise ValueError(f"fuse: {len(weights)} weights for {len(sources)} sources")
    if conf_thresholds is not None and len(conf_thresholds) != len(sources):
        raise ValueError(f"fuse: {len(conf_thresholds)} confidence thresholds for {len(sources)} sources")
    if weights is not None and (min(weights) < 0 or max(weights) <= 0):
        raise ValueError(f"fuse: weights must be >= 0 with at least one > 0, got {list(weights)}")

    size = _common_image_size(sources, image_size)
    if conf_thresholds is not None:
        sources = [d if t is None else d.filter(t) for d, t in zip(sources, conf_thresholds)]
    sources = [d[d.scores >= skip_box_threshold] for d in sources]
    if sum(len(d) for d in sources) == 0:
        return Detections.empty(size)
    h, w = size
    if h <= 0 or w <= 0:
        raise ValueError("fuse: image size unknown; set Detections.image_size or pass image_size=")

    scale = np.array([w, h, w, h], dtype=np.float64)
    boxes, scores, labels = [], [], []
    for d in sources:
        norm = np.clip(d.xyxy.astype(np.float64) / scale, 0.0, 1.0)
        keep = (norm[:, 2] > norm[:, 0]) & (norm[:, 3] > norm[:, 1])  # zero-area boxes carry nothing
        boxes.append(norm[keep])
        scores.append(d.scores[keep].astype(np.float64))
        labels.append(d.class_ids[keep].astype(np.float64))
    if sum(len(s) for s in scores) == 0:
        return Detections.empty(size)

    if method == "wbf":
        out_boxes, out_scores, out_labels = weighted_boxes_fusion(
            boxes, scores, labels, weights=None if weights is None else list(map(float, weights)),
            iou_thr=iou_threshold, skip_box_thr=skip_box_threshold, conf_type=conf_type,
        )
    else:
        out_boxes, out_scores, out_labels = nms_fusion(boxes, scores, labels, weights=weights, iou_thr=iou_threshold,
                                                       soft=method == "soft_nms", sigma=sigma,
                                                       skip_box_thr=skip_box_threshold)

    fused = Detections(np.asarray(out_boxes, dtype=np.float64).reshape(-1, 4) * scale, out_scores,
                       np.rint(np.asarray(out_labels)).astype(np.int64), size)
    # by score, ties by class then position: the same input always gives the same order
    order = np.lexsort((fused.xyxy[:, 1], fused.xyxy[:, 0], fused.class_ids, -fused.scores))
    return fused[order]


def _common_image_size(sources: list[Detections], override: tuple[int, int] | None) -> tuple[int, int]:
    if override is not None:
        return int(override[0]), int(override[1])
    known = {d.image_size for d in sources if d.image_size[0] > 0 and d.image_size[1] > 0}
    if len(known) > 1:
        raise ValueError(f"fuse: sources describe different image sizes {sorted(known)}")
    return known.pop() if known else (0, 0)


def fuse_batch(
    per_source_batches: Sequence[Sequence[Detections]], **fuse_options
) -> list[Detections]:
    """Fuse image by image: `per_source_batches[s][i]` is source s's detections of image i."""
    batches = [list(b) for b in per_source_batches]
    if not batches:
        raise ValueError("fuse_batch: at least one source is needed")
    n = len(batches[0])
    if any(len(b) != n for b in batches):
        raise ValueError(f"fuse_batch: sources cover different numbers of images {[len(b) for b in batches]}")
    return [fuse([b[i] for b in batches], **fuse_options) for i in range(n)]
