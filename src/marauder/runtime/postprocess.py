"""Decode YOLO outputs and run NMS in numpy, matching `ultralytics.utils.nms.non_max_suppression`.

Raw YOLOv8-style output is (batch, 4 + nc, anchors): centre-x, centre-y, width, height in input
pixels, then one score per class. End-to-end heads (YOLOv10/YOLO26) give (batch, max_det, 6) rows of
x1, y1, x2, y2, score, class and need no NMS.
"""

from __future__ import annotations

import numpy as np

try:
    from cv2.dnn import NMSBoxes as _cv2_nms
except ImportError:  # an OpenCV built without the dnn module
    _cv2_nms = None

MAX_WH = 7680  # per-class coordinate offset, so one NMS pass never merges different classes
MAX_NMS = 30000  # boxes kept (by score) before NMS


def xywh2xyxy(xywh: np.ndarray) -> np.ndarray:
    out = np.empty_like(xywh)
    half = xywh[:, 2:4] / 2
    out[:, :2] = xywh[:, :2] - half
    out[:, 2:4] = xywh[:, :2] + half
    return out


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS (torchvision semantics: suppress IoU > threshold). Returns kept indices by score.

    OpenCV's C++ NMSBoxes does the work (same rule: keep a box unless it overlaps a kept, higher-scoring
    box by IoU > threshold); the numpy loop is the fallback and the reference in the tests. At a low
    confidence a YOLO head yields thousands of candidates, where the numpy loop costs seconds.
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    if _cv2_nms is not None:
        xywh = boxes.astype(np.float64, copy=True)
        xywh[:, 2:] -= xywh[:, :2]
        keep = _cv2_nms(xywh, scores.astype(np.float32), 0.0, float(iou_threshold))  # scores here are > 0
        return np.asarray(keep, dtype=np.int64).reshape(-1)
    return nms_numpy(boxes, scores, iou_threshold)


def nms_numpy(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """The same greedy NMS in numpy (O(kept x candidates))."""
    order = np.argsort(-scores, kind="stable")
    boxes = boxes.astype(np.float32, copy=False)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0)
        h = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0)
        inter = w * h
        with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 for degenerate boxes: NaN, kept
            iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[~(iou > iou_threshold)]
    return np.asarray(keep, dtype=np.int64)


def decode(prediction: np.ndarray, conf: float, iou: float, max_det: int = 300,
           agnostic: bool = False) -> list:
    """Per image, an (N, 6) float32 array of x1, y1, x2, y2, score, class in model-input pixels."""
    prediction = np.asarray(prediction, dtype=np.float32)
    if prediction.ndim == 2:
        prediction = prediction[None]
    if prediction.shape[-1] == 6 and prediction.shape[1] != 6:  # end-to-end head, NMS-free
        out = []
        for pred in prediction:
            out.append(pred[pred[:, 4] > conf][:max_det])
        return out
    out = []
    for pred in prediction:  # (4 + nc, anchors): reduce over classes in this layout, it is contiguous
        best = pred[4:].max(0)
        keep = best > conf
        if not keep.any():
            out.append(np.zeros((0, 6), np.float32))
            continue
        cand = pred[:, keep].T  # (candidates, 4 + nc)
        class_ids = cand[:, 4:].argmax(1)
        det = np.concatenate([xywh2xyxy(cand[:, :4]), best[keep][:, None],
                              class_ids[:, None].astype(np.float32)], 1)
        if len(det) > MAX_NMS:
            det = det[np.argsort(-det[:, 4], kind="stable")[:MAX_NMS]]
        offset = det[:, 5:6] * (0 if agnostic else MAX_WH)
        keep_idx = nms(det[:, :4] + offset, det[:, 4], iou)[:max_det]
        out.append(det[keep_idx])
    return out
