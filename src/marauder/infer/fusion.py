"""Fuse the detections of several sources (ensemble members, TTA views) of one image into one set.

Works on our `Detections` type, so it fuses PyTorch, ONNX and TensorRT outputs alike. The fusion
itself is the edge runtime's numpy code (marauder.runtime.fusion: WBF step for step as ensemble-boxes,
which the tests keep as the oracle), so training-side and deployed pipelines fuse identically.
Boxes are normalised by the image size (what WBF expects) and the result is mapped back to pixels.

Order of operations, for every method:
  1. each source's own confidence threshold (`conf_thresholds[i]`, a float or one per class id);
  2. `skip_box_threshold` on the raw scores;
  3. the fusion itself, per class.

Weights: WBF uses ensemble-boxes' semantics (a box found by one of three equally weighted models
keeps a third of its score with conf_type="avg": agreement is rewarded). For NMS and soft-NMS a
source's scores are scaled by weight / max(weights), so equal weights leave scores unchanged
(ensemble-boxes would divide them by the sum of the weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from ..runtime.fusion import nms_fusion, weighted_boxes_fusion
from ..types import Detections

FusionMethod = Literal["wbf", "nms", "soft_nms"]
ConfType = Literal["avg", "max", "box_and_model_avg", "absent_model_aware_avg"]
METHODS = ("wbf", "nms", "soft_nms")
CONF_TYPES = ("avg", "max", "box_and_model_avg", "absent_model_aware_avg")


def fuse(
    detections_per_source: Sequence[Detections],
    method: FusionMethod = "wbf",
    iou_threshold: float = 0.55,
    skip_box_threshold: float = 0.001,
    weights: Sequence[float] | None = None,
    conf_type: ConfType = "avg",
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
        out_boxes, out_scores, out_labels = _nms(boxes, scores, labels, method, iou_threshold,
                                                 skip_box_threshold, weights, sigma)

    fused = Detections(np.asarray(out_boxes, dtype=np.float64).reshape(-1, 4) * scale, out_scores,
                       np.rint(np.asarray(out_labels)).astype(np.int64), size)
    # by score, ties by class then position: the same input always gives the same order
    order = np.lexsort((fused.xyxy[:, 1], fused.xyxy[:, 0], fused.class_ids, -fused.scores))
    return fused[order]


def _nms(boxes, scores, labels, method, iou_threshold, skip_box_threshold, weights, sigma):
    """Class-wise greedy NMS / Gaussian soft-NMS: the edge runtime's numpy code, so both agree.

    Not ensemble-boxes' nms_method: its soft-NMS returns the undecayed scores (so it only drops
    boxes, never re-ranks them), and its numba NMS costs ~3 s of JIT compilation on first use.
    """
    return nms_fusion(boxes, scores, labels, weights=weights, iou_thr=iou_threshold,
                      soft=method == "soft_nms", sigma=sigma, skip_box_thr=skip_box_threshold)


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
