"""Ensemble fusion in numpy: weighted boxes fusion (WBF), NMS and Gaussian soft-NMS.

WBF follows ensemble-boxes (ZFTurbo) step by step, including its float32 rounding of fused boxes (the
unit tests keep that library as the oracle); the Python pipeline (marauder.infer.fusion) calls this
same code, so both fuse identically. Boxes are normalised xyxy in [0, 1]; inputs are one (boxes,
scores, labels) triple per source (model x TTA view).
"""

from __future__ import annotations

import numpy as np

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
    """One label's rows (best first) -> fused rows and each cluster's member rows. ensemble-boxes
    recomputes a cluster's box from all its members at every addition; the running float32 sum here
    adds the same products in the same order, so the boxes are the same, at a constant cost each.
    The fused boxes' corners and areas are kept as columns, computed as ensemble-boxes computes them."""
    n = len(rows)
    fused = np.empty((n, 8))  # a cluster of one keeps its raw row, as in ensemble-boxes
    x1, y1, x2, y2, area = (np.empty(n) for _ in range(5))
    sums = np.zeros((n, 4), dtype=np.float32)  # float32 like ensemble-boxes, so fused boxes round the same
    conf, best, weight = [0.0] * n, [0.0] * n, [0.0] * n
    members: list[list[int]] = []
    for j, (label, score, w, _t, bx1, by1, bx2, by2) in enumerate(rows.tolist()):
        m = len(members)
        index = -1
        if m:
            inter = (np.maximum(np.minimum(x2[:m], bx2) - np.maximum(x1[:m], bx1), 0)
                     * np.maximum(np.minimum(y2[:m], by2) - np.maximum(y1[:m], by1), 0))
            iou = inter / (area[:m] + (bx2 - bx1) * (by2 - by1) - inter)
            k = int(iou.argmax())
            index = k if iou[k] > iou_thr else -1
        if index == -1:
            index = m
            members.append([])
            fused[index] = rows[j]
        members[index].append(j)
        sums[index] += rows[j, 1] * rows[j, 4:]
        conf[index] += rows[j, 1]
        best[index] = max(best[index], score)
        weight[index] += w
        if len(members[index]) > 1:
            box = np.zeros(8, dtype=np.float32)
            box[0], box[2], box[3] = label, weight[index], -1
            box[1] = best[index] if conf_type == "max" else conf[index] / len(members[index])
            box[4:] = sums[index]
            box[4:] /= conf[index]
            fused[index] = box
        x1[index], y1[index], x2[index], y2[index] = fused[index, 4:].tolist()
        area[index] = (x2[index] - x1[index]) * (y2[index] - y1[index])
    return fused[:len(members)], members


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

    The Python pipeline (marauder.infer.fusion) calls this too: a source's scores are scaled by
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


FUSION_METHODS = ("wbf", "nms", "soft_nms")


def fuse(method: str, boxes_list, scores_list, labels_list, weights=None, iou_thr: float = 0.55,
         skip_box_thr: float = 0.0, conf_type: str = "avg"):
    """Dispatch on the config's fusion.method ('wbf', 'nms', 'soft_nms'); boxes normalised to [0, 1]."""
    if method == "wbf":
        return weighted_boxes_fusion(boxes_list, scores_list, labels_list, weights, iou_thr,
                                     skip_box_thr, conf_type)
    if method in ("nms", "soft_nms"):
        return nms_fusion(boxes_list, scores_list, labels_list, weights, iou_thr,
                          soft=method == "soft_nms", skip_box_thr=skip_box_thr)
    raise ValueError(f"unknown fusion method '{method}'")
