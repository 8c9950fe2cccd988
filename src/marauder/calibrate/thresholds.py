"""Per-class operating thresholds on calibrated scores.

Objectives:
  f1      maximise F1 (the default)
  fbeta   maximise F-beta (beta > 1 favours recall, < 1 precision)
  recall  the highest threshold whose recall reaches a target (used for critical species, where a
          missed animal costs more than a false alarm)
Precision and recall of the chosen threshold come with bootstrap intervals over images.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..evaluate.bootstrap import bootstrap_ratio_ci


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    precision: float
    recall: float
    f_score: float
    objective: str
    n_gt: int
    n_detections: int
    precision_ci: tuple[float, float] = (float("nan"), float("nan"))
    recall_ci: tuple[float, float] = (float("nan"), float("nan"))
    target_reached: bool = True
    note: str = ""

    def as_dict(self) -> dict:
        r = lambda v: None if not np.isfinite(v) else round(float(v), 4)  # noqa: E731
        return {
            "threshold": r(self.threshold),
            "precision": r(self.precision),
            "recall": r(self.recall),
            "f_score": r(self.f_score),
            "objective": self.objective,
            "n_gt": self.n_gt,
            "n_detections": self.n_detections,
            "precision_ci": [r(v) for v in self.precision_ci],
            "recall_ci": [r(v) for v in self.recall_ci],
            "target_reached": self.target_reached,
            "note": self.note,
        }


def pr_at_thresholds(scores, labels, n_gt: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate thresholds (distinct scores, descending) and precision/recall keeping score >= each."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    last_of_tie = (
        np.r_[s[1:] != s[:-1], True] if len(s) else np.zeros(0, bool)
    )  # a threshold keeps every detection with an equal score
    s, tp, fp = s[last_of_tie], tp[last_of_tie], fp[last_of_tie]
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / n_gt if n_gt > 0 else np.zeros_like(precision)
    return s, precision, recall


def f_beta(precision, recall, beta: float = 1.0):
    p, r = np.asarray(precision, dtype=np.float64), np.asarray(recall, dtype=np.float64)
    b2 = beta * beta
    denom = b2 * p + r
    return np.where(denom > 0, (1 + b2) * p * r / np.where(denom > 0, denom, 1), 0.0)


def choose_threshold(
    scores, labels, n_gt: int, objective: str = "f1", beta: float = 1.0, recall_target: float | None = None
) -> ThresholdChoice:
    """Pick one threshold for one class (see the module docstring for objectives)."""
    if objective not in ("f1", "fbeta", "recall"):
        raise ValueError(f"unknown threshold objective '{objective}'; expected f1, fbeta or recall")
    beta = 1.0 if objective == "f1" else beta
    t, p, r = pr_at_thresholds(scores, labels, n_gt)
    n = len(np.asarray(scores))
    if len(t) == 0 or n_gt == 0:
        note = "no ground truth for this class" if n_gt == 0 else "no detections for this class"
        return ThresholdChoice(
            float("nan"),
            float("nan"),
            0.0 if n_gt else float("nan"),
            float("nan"),
            objective,
            n_gt,
            n,
            target_reached=False,
            note=note,
        )
    f = f_beta(p, r, beta)
    if objective == "recall":
        if recall_target is None:
            raise ValueError("objective 'recall' needs a recall target")
        reach = np.nonzero(r >= recall_target - 1e-12)[0]
        if len(reach):
            i = int(reach[0])  # thresholds descend: the first that reaches the target is the highest
            return ThresholdChoice(float(t[i]), float(p[i]), float(r[i]), float(f[i]), objective, n_gt, n)
        i = len(t) - 1  # unreachable: keep everything the model gives and say so
        return ThresholdChoice(
            float(t[i]),
            float(p[i]),
            float(r[i]),
            float(f[i]),
            objective,
            n_gt,
            n,
            target_reached=False,
            note=f"recall {r[i]:.3f} < target {recall_target:g} even at the lowest score",
        )
    i = int(np.nonzero(f >= f.max() - 1e-12)[0][0])  # ties: the highest threshold (fewest detections)
    note = "" if tp_any(p) else "no true positive at any threshold"
    return ThresholdChoice(float(t[i]), float(p[i]), float(r[i]), float(f[i]), objective, n_gt, n, note=note)


def tp_any(precision: np.ndarray) -> bool:
    return bool(np.any(np.asarray(precision) > 0))


def bootstrap_pr(
    scores,
    labels,
    image_ids,
    gt_per_image,
    threshold: float,
    n_boot: int = 500,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Percentile intervals of precision and recall at a fixed threshold, resampling images (the
    project's one bootstrap, marauder.evaluate.bootstrap)."""
    gt_per_image = np.asarray(gt_per_image, dtype=np.int64)
    n_images = len(gt_per_image)
    nan2 = (float("nan"), float("nan"))
    if n_boot <= 0 or n_images == 0 or not np.isfinite(threshold):
        return nan2, nan2
    keep = np.asarray(scores) >= threshold
    ids = np.asarray(image_ids, dtype=np.int64)
    tp_img = np.bincount(ids[keep], weights=np.asarray(labels, dtype=np.float64)[keep], minlength=n_images)
    det_img = np.bincount(ids[keep], minlength=n_images).astype(np.float64)

    def interval(numerator, denominator) -> tuple[float, float]:  # same seed: the same image draws for both
        _, low, high = bootstrap_ratio_ci(numerator, denominator, n_boot, 1 - alpha, seed)
        return low, high

    return interval(tp_img, det_img), interval(tp_img, gt_per_image)


def choose_class_thresholds(
    scores,
    class_ids,
    labels,
    image_ids,
    gt_counts,
    class_names: list[str],
    *,
    objective: str = "f1",
    beta: float = 1.0,
    critical: set[str] | None = None,
    critical_recall: float | None = None,
    bootstrap: int = 500,
    seed: int = 0,
) -> dict[int, ThresholdChoice]:
    """One threshold per class id; critical species use the recall objective when a target is set.

    `gt_counts` is (num_images, num_classes). A class without ground truth or detections gets the
    threshold chosen on all classes pooled, and its note says so.
    """
    scores, class_ids = np.asarray(scores, dtype=np.float64), np.asarray(class_ids, dtype=np.int64)
    labels, image_ids = np.asarray(labels, dtype=bool), np.asarray(image_ids, dtype=np.int64)
    gt_counts = np.asarray(gt_counts, dtype=np.int64).reshape(-1, len(class_names))
    critical = critical or set()
    pooled = choose_threshold(scores, labels, int(gt_counts.sum()), objective, beta)
    out: dict[int, ThresholdChoice] = {}
    for cid, name in enumerate(class_names):
        m = class_ids == cid
        goal = "recall" if name in critical and critical_recall is not None else objective
        choice = choose_threshold(
            scores[m], labels[m], int(gt_counts[:, cid].sum()), goal, beta, critical_recall
        )
        if not np.isfinite(choice.threshold):
            out[cid] = replace(choice, threshold=pooled.threshold, objective=goal, target_reached=False,
                               note=f"{choice.note}: pooled threshold used")
            continue
        p_ci, r_ci = bootstrap_pr(
            scores[m], labels[m], image_ids[m], gt_counts[:, cid], choice.threshold, bootstrap, seed + cid
        )
        out[cid] = replace(choice, objective=goal, precision_ci=p_ci, recall_ci=r_ci)
    return out


@dataclass(frozen=True)
class HeldOutPoint:
    """Precision and recall of a class on images whose thresholds were chosen without them."""

    precision: float
    recall: float
    precision_ci: tuple[float, float]
    recall_ci: tuple[float, float]
    folds: int

    def as_dict(self) -> dict:
        r = lambda v: None if not np.isfinite(v) else round(float(v), 4)  # noqa: E731
        return {"precision": r(self.precision), "recall": r(self.recall),
                "precision_ci": [r(v) for v in self.precision_ci], "recall_ci": [r(v) for v in self.recall_ci],
                "folds": self.folds}


def heldout_operating_point(
    scores, class_ids, labels, image_ids, gt_counts, class_names: list[str], *, folds: int = 5,
    bootstrap: int = 500, seed: int = 0, **choose_kwargs,
) -> dict[int, HeldOutPoint]:
    """Cross-fitted precision/recall per class: split the images into `folds`; each fold is judged
    at the thresholds `choose_class_thresholds(..., **choose_kwargs)` picks on the other folds.

    A threshold reported on the data that chose it is optimistic (it sits exactly where the target was
    just reached); these numbers estimate what new images of the same kind will see. Intervals
    resample images. With fewer than two images there is nothing to hold out: nan.
    """
    from ..evaluate.bootstrap import bootstrap_ratio_ci

    scores, class_ids = np.asarray(scores, np.float64), np.asarray(class_ids, np.int64)
    labels, image_ids = np.asarray(labels, bool), np.asarray(image_ids, np.int64)
    gt_counts = np.asarray(gt_counts, np.int64).reshape(-1, len(class_names))
    n_images, nc = gt_counts.shape
    k = min(int(folds), n_images)
    nan2 = (float("nan"), float("nan"))
    if k < 2:
        return {c: HeldOutPoint(float("nan"), float("nan"), nan2, nan2, 0) for c in range(nc)}
    fold_of_image = np.random.default_rng(seed).permutation(n_images) % k
    tp = np.zeros((n_images, nc))
    kept = np.zeros((n_images, nc))
    for f in range(k):
        held_image = fold_of_image == f
        fit_det = ~held_image[image_ids]
        fit_gt = np.where(held_image[:, None], 0, gt_counts)
        chosen = choose_class_thresholds(scores[fit_det], class_ids[fit_det], labels[fit_det], image_ids[fit_det],
                                         fit_gt, class_names, bootstrap=0, seed=seed, **choose_kwargs)
        t = np.array([chosen[c].threshold if np.isfinite(chosen[c].threshold) else np.inf for c in range(nc)])
        keep = ~fit_det & (scores >= t[class_ids])
        np.add.at(tp, (image_ids[keep], class_ids[keep]), labels[keep].astype(np.float64))
        np.add.at(kept, (image_ids[keep], class_ids[keep]), 1.0)
    out = {}
    for c in range(nc):
        p, p_lo, p_hi = bootstrap_ratio_ci(tp[:, c], kept[:, c], bootstrap, seed=seed + c)
        r, r_lo, r_hi = bootstrap_ratio_ci(tp[:, c], gt_counts[:, c], bootstrap, seed=seed + nc + c)
        out[c] = HeldOutPoint(p, r, (p_lo, p_hi), (r_lo, r_hi), k)
    return out
