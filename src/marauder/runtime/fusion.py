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
    """label -> rows [label, weighted score, weight, model index, x1, y1, x2, y2], best score first."""
    grouped = {}
    for t, (boxes, scores, labels) in enumerate(zip(boxes_list, scores_list, labels_list)):
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        for j in range(len(boxes)):
            score = float(scores[j])
            if score < thr:
                continue
            x1, y1, x2, y2 = (float(v) for v in boxes[j])
            x1, x2 = min(x1, x2), max(x1, x2)
            y1, y2 = min(y1, y2), max(y1, y2)
            x1, y1, x2, y2 = (min(max(v, 0.0), 1.0) for v in (x1, y1, x2, y2))
            if (x2 - x1) * (y2 - y1) == 0.0:
                continue  # zero-area boxes carry no location
            label = int(labels[j])
            grouped.setdefault(label, []).append(
                [label, score * weights[t], weights[t], t, x1, y1, x2, y2])
    for label in grouped:
        rows = np.array(grouped[label])
        grouped[label] = rows[rows[:, 1].argsort()[::-1]]
    return grouped


def _weighted_box(cluster: list, conf_type: str) -> np.ndarray:
    box = np.zeros(8, dtype=np.float32)  # float32 like ensemble-boxes, so fused boxes round the same
    conf = 0.0
    weight = 0.0
    confs = []
    for b in cluster:
        box[4:] += b[1] * b[4:]
        conf += b[1]
        confs.append(b[1])
        weight += b[2]
    box[0] = cluster[0][0]
    box[1] = max(confs) if conf_type == "max" else conf / len(cluster)
    box[2] = weight
    box[3] = -1
    box[4:] /= conf
    return box


def _best_match(fused: np.ndarray, box: np.ndarray, iou_thr: float) -> int:
    if fused.shape[0] == 0:
        return -1
    b = fused[:, 4:]
    xa = np.maximum(b[:, 0], box[4])
    ya = np.maximum(b[:, 1], box[5])
    xb = np.minimum(b[:, 2], box[6])
    yb = np.minimum(b[:, 3], box[7])
    inter = np.maximum(xb - xa, 0) * np.maximum(yb - ya, 0)
    union = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) + (box[6] - box[4]) * (box[7] - box[5]) - inter
    iou = inter / union
    iou[fused[:, 0] != box[0]] = -1
    best = int(np.argmax(iou))
    return best if iou[best] > iou_thr else -1


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
        clusters = []
        fused = np.empty((0, 8))
        for row in rows:
            index = _best_match(fused, row, iou_thr)
            if index != -1:
                clusters[index].append(row)
                fused[index] = _weighted_box(clusters[index], conf_type)
            else:
                clusters.append([row.copy()])
                fused = np.vstack((fused, row.copy()))
        for i, cluster in enumerate(clusters):
            cluster = np.array(cluster)
            if conf_type == "box_and_model_avg":
                fused[i, 1] = fused[i, 1] * len(cluster) / fused[i, 2]
                _, idx = np.unique(cluster[:, 3], return_index=True)
                fused[i, 1] = fused[i, 1] * cluster[idx, 2].sum() / weights.sum()
            elif conf_type == "absent_model_aware_avg":
                present = np.unique(cluster[:, 3]).astype(int)
                absent = np.ones(len(weights), dtype=bool)
                absent[present] = False
                fused[i, 1] = fused[i, 1] * len(cluster) / (fused[i, 2] + weights[absent].sum())
            elif conf_type == "max":
                fused[i, 1] = fused[i, 1] / weights.max()
            elif not allows_overflow:
                fused[i, 1] = fused[i, 1] * min(len(weights), len(cluster)) / weights.sum()
            else:
                fused[i, 1] = fused[i, 1] * len(cluster) / weights.sum()
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
