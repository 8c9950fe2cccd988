"""How uncertain the model is about an image: one number per image, higher = more worth labelling.

Per box we build a distribution q over our classes plus "background": the model's per-class
scores s_c (independent sigmoids in YOLO) and 1 - max(s_c), normalised to sum to one. That keeps
least-confidence, margin and entropy meaningful for one-class models (fish vs background) as well
as for many classes (lionfish vs rockfish). An image scores as its most uncertain box.

`uncertainty_sampling` is the guide's rule: boxes whose confidence falls in
[min_confidence, max_confidence] count, each weighted by how close it is to the middle of the band.
The image scores as its most borderline box (the maximum, not the sum): a sum grows with crowding, so
ten boxes at 0.35 would outrank one at 0.5 and crowded frames would fill the package, while one
borderline animal is as worth a label in a sparse frame as in a shoal.

Frames where the model finds nothing score 0 under every uncertainty rule, although they are where it
misses animals; the selection reserves a share of the package for them (see select_stage.py).
"""

from __future__ import annotations

import numpy as np

from ..types import Detections

STRATEGIES = ("uncertainty_sampling", "least_confidence", "margin", "entropy", "random")


def box_distributions(dets: Detections, num_classes: int) -> np.ndarray:
    """(N, num_classes + 1) rows summing to 1: class scores and a background share."""
    n = len(dets)
    scores = dets.extra.get("class_scores")
    if scores is None or np.shape(scores) != (n, num_classes):
        # No per-class vector (e.g. ONNX or end-to-end heads): all mass on the predicted class.
        scores = np.zeros((n, num_classes), dtype=np.float64)
        if n:
            scores[np.arange(n), np.clip(dets.class_ids, 0, num_classes - 1)] = dets.scores
    scores = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    background = 1.0 - (scores.max(axis=1, keepdims=True) if n else np.zeros((0, 1)))
    q = np.concatenate([scores, background], axis=1)
    return q / np.maximum(q.sum(axis=1, keepdims=True), 1e-12)


def least_confidence(q: np.ndarray) -> np.ndarray:
    return 1.0 - q.max(axis=1)


def margin_uncertainty(q: np.ndarray) -> np.ndarray:
    """1 - (top1 - top2): a small gap between the two best answers means high uncertainty."""
    top2 = -np.sort(-q, axis=1)[:, :2]
    return 1.0 - (top2[:, 0] - top2[:, 1])


def entropy_uncertainty(q: np.ndarray) -> np.ndarray:
    """Shannon entropy normalised by its maximum, so it lies in [0, 1] for any class count."""
    ent = -(q * np.log(np.clip(q, 1e-12, 1.0))).sum(axis=1)
    return ent / np.log(q.shape[1])


def band_score(confidences: np.ndarray, low: float, high: float) -> float:
    """Max over boxes inside [low, high] of 1 - |conf - middle| / half-width (in (0, 1]); 0 without one."""
    conf = np.asarray(confidences, dtype=np.float64)
    inside = conf[(conf >= low) & (conf <= high)]
    mid, half = (low + high) / 2, (high - low) / 2
    return float(np.max(1.0 - np.abs(inside - mid) / half)) if inside.size else 0.0


def random_score(sha256: str, seed: int) -> float:
    """A uniform number fixed by the image content and the seed (same picks on every rerun)."""
    return float(np.random.default_rng([seed, int(sha256[:15], 16)]).random())


_PER_BOX = {"least_confidence": least_confidence, "margin": margin_uncertainty, "entropy": entropy_uncertainty}


def image_score(strategy: str, dets: Detections, num_classes: int, *, min_confidence: float = 0.3,
                max_confidence: float = 0.7, sha256: str = "0", seed: int = 0,
                floor: float = 0.0) -> float:
    """Score one image; boxes below `floor` are ignored.

    No floor is needed by default: a near-zero box is near-certain background under q, so it adds
    almost no uncertainty; for a weak early model the ranking then follows its strongest hunches.
    """
    if strategy == "random":
        return random_score(sha256, seed)
    if strategy == "uncertainty_sampling":
        return band_score(dets.scores, min_confidence, max_confidence)
    if strategy not in _PER_BOX:
        raise ValueError(f"unknown strategy '{strategy}'; expected one of {STRATEGIES}")
    kept = dets[dets.scores >= floor]
    if not len(kept):
        return 0.0
    return float(_PER_BOX[strategy](box_distributions(kept, num_classes)).max())
