"""Fitting score calibrators: raw fused score -> probability that the detection is a true positive.

A detection is a true positive when it overlaps (IoU >= 0.5 by default) a ground-truth box of its
class that no higher-scoring detection has already claimed. Per class we fit temperature scaling,
Platt scaling and isotonic regression, and keep the one with the lowest held-out log-loss, where
"held out" means cross-validation over calibration IMAGES (GroupKFold): a calibrator is never
judged on detections of the images it was fitted on. Classes with too few detections (or only
one outcome) use a calibrator fitted on all classes pooled.

The fitted calibrators are plain dicts applied by `marauder.runtime.calibration` (numpy only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..evaluate.matching import in_crowd_region
from ..runtime.calibration import EPS, apply_calibrator, logit
from ..types import Detections, GroundTruth


# -- labelling ---------------------------------------------------------------------------------------
def label_detections(dets: Detections, gt: GroundTruth, iou_threshold: float = 0.5) -> np.ndarray:
    """True-positive flag per detection: the evaluator's greedy matcher (by score, one GT box per
    detection, same class). Crowd regions are not boxes to find (see `in_crowd_region`)."""
    from ..evaluate.matching import greedy_match

    return greedy_match(dets, gt.without_crowd(), iou_threshold)[0] >= 0


@dataclass
class ScoredDetections:
    """Every detection of a calibration set, flattened: score, class, TP flag and image index."""

    scores: np.ndarray
    class_ids: np.ndarray
    labels: np.ndarray
    image_ids: np.ndarray
    gt_counts: np.ndarray  # (num_images, num_classes) ground-truth boxes per image and class

    @classmethod
    def build(
        cls,
        detections: Sequence[Detections],
        ground_truths: Sequence[GroundTruth],
        num_classes: int,
        iou_threshold: float = 0.5,
    ) -> ScoredDetections:
        scores, classes, labels, images = [], [], [], []
        gt_counts = np.zeros((len(ground_truths), num_classes), dtype=np.int64)
        for i, (dets, gt) in enumerate(zip(detections, ground_truths)):
            flags = label_detections(dets, gt, iou_threshold)
            keep = flags | ~in_crowd_region(dets, gt, iou_threshold)
            scores.append(dets.scores[keep])
            classes.append(dets.class_ids[keep])
            labels.append(flags[keep])
            images.append(np.full(int(keep.sum()), i, dtype=np.int64))
            valid = gt.counted[(gt.counted >= 0) & (gt.counted < num_classes)]
            gt_counts[i] = np.bincount(valid, minlength=num_classes)[:num_classes]
        cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)  # noqa: E731
        return cls(
            cat(scores, np.float64),
            cat(classes, np.int64),
            cat(labels, bool),
            cat(images, np.int64),
            gt_counts,
        )

    def of_class(self, class_id: int) -> ScoredDetections:
        m = self.class_ids == class_id
        return ScoredDetections(
            self.scores[m], self.class_ids[m], self.labels[m], self.image_ids[m], self.gt_counts
        )


# -- metrics -----------------------------------------------------------------------------------------
def log_loss(probabilities, labels) -> float:
    p = np.clip(np.asarray(probabilities, dtype=np.float64), EPS, 1 - EPS)
    y = np.asarray(labels, dtype=np.float64)
    if len(p) == 0:
        return float("nan")
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


# -- fitting one calibrator --------------------------------------------------------------------------
def fit_temperature(scores, labels) -> dict:
    """One temperature t > 0 minimising log-loss of sigmoid(logit(s) / t)."""
    from scipy.optimize import minimize_scalar

    z, y = logit(scores), np.asarray(labels, dtype=np.float64)

    def nll(log_t: float) -> float:
        q = z / np.exp(log_t)
        return float(np.mean(np.logaddexp(0, q) - y * q))  # stable binary cross-entropy on logits

    res = minimize_scalar(nll, bounds=(-4.0, 4.0), method="bounded")
    return {"method": "temperature", "t": float(np.exp(res.x))}


def fit_platt(scores, labels) -> dict:
    """sigmoid(a * logit(s) + b), fitted by (nearly unregularised) logistic regression."""
    from sklearn.linear_model import LogisticRegression

    z = logit(scores).reshape(-1, 1)
    lr = LogisticRegression(C=1e4, max_iter=1000).fit(z, np.asarray(labels, dtype=int))
    return {"method": "platt", "a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}


def fit_isotonic(scores, labels) -> dict:
    """Monotone piecewise-linear map through sklearn's isotonic knots."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True)
    iso.fit(np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.float64))
    return {
        "method": "isotonic",
        "x": [float(v) for v in iso.X_thresholds_],
        "y": [float(v) for v in iso.y_thresholds_],
    }


FITTERS = {"temperature": fit_temperature, "platt": fit_platt, "isotonic": fit_isotonic}


def fit_calibrator(method: str, scores, labels) -> dict:
    if method == "identity":
        return {"method": "identity"}
    return FITTERS[method](scores, labels)


# -- choosing by held-out log-loss -------------------------------------------------------------------
@dataclass
class CalibratorChoice:
    """The calibrator kept for one class (or the pooled one) and how the candidates did held out."""

    params: dict
    n: int
    n_positive: int
    heldout_log_loss: dict[str, float]
    out_of_fold: np.ndarray  # held-out calibrated scores of the chosen method, aligned with the input
    fallback: str | None = None  # why the pooled calibrator is used instead, if it is

    @property
    def method(self) -> str:
        return self.params["method"]


def _folds(image_ids: np.ndarray, folds: int):
    from sklearn.model_selection import GroupKFold

    n_groups = len(np.unique(image_ids))
    k = min(folds, n_groups)
    if k < 2:
        return []
    return list(GroupKFold(n_splits=k).split(np.zeros(len(image_ids)), groups=image_ids))


def _fittable(labels: np.ndarray) -> bool:
    return len(labels) >= 2 and 0 < int(labels.sum()) < len(labels)


def choose_calibrator(scores, labels, image_ids, methods: Sequence[str], folds: int = 5) -> CalibratorChoice:
    """Fit every method on k-1 folds of images, score the held-out fold, keep the best; refit on all.

    The identity map is always a candidate, so calibration never makes held-out log-loss worse.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    image_ids = np.asarray(image_ids)
    candidates = ["identity", *[m for m in methods if m != "identity"]]
    splits = _folds(image_ids, folds)
    oof = {m: scores.astype(np.float64).copy() for m in candidates}
    for train, test in splits:
        for m in candidates:
            if m != "identity" and _fittable(labels[train]):
                oof[m][test] = apply_calibrator(scores[test], fit_calibrator(m, scores[train], labels[train]))
            elif m != "identity":  # a fold with one outcome only: this method cannot learn there
                oof[m][test] = np.nan
    losses = {}
    for m in candidates:
        ok = ~np.isnan(oof[m])
        losses[m] = log_loss(oof[m][ok], labels[ok]) if ok.all() and splits else float("nan")
    valid = {m: v for m, v in losses.items() if np.isfinite(v)}
    best = min(valid, key=valid.get) if valid else "identity"
    params = fit_calibrator(best, scores, labels) if _fittable(labels) else {"method": "identity"}
    if params["method"] != best:
        best = "identity"
    return CalibratorChoice(params, len(scores), int(labels.sum()), losses, oof[best])


@dataclass
class CalibrationFit:
    """Per-class calibrators (class id -> dict), the pooled fallback, and what was decided for whom."""

    per_class: dict[int, dict]
    pooled: dict
    choices: dict[int, CalibratorChoice] = field(default_factory=dict)
    pooled_choice: CalibratorChoice | None = None
    out_of_fold: np.ndarray | None = None  # held-out calibrated score of every detection

    def apply(self, scores, class_ids) -> np.ndarray:
        from ..runtime.calibration import apply_per_class

        return apply_per_class(scores, class_ids, self.per_class, self.pooled)


def fit_per_class(
    data: ScoredDetections, num_classes: int, methods: Sequence[str], folds: int = 5, min_samples: int = 30
) -> CalibrationFit:
    """Choose a calibrator per class; with < min_samples detections or one outcome, the pooled one."""
    pooled = choose_calibrator(data.scores, data.labels, data.image_ids, methods, folds)
    fit = CalibrationFit({}, pooled.params, pooled_choice=pooled)
    oof = pooled.out_of_fold.copy()
    for cid in range(num_classes):
        mask = data.class_ids == cid
        sub = data.of_class(cid)
        n, n_pos = len(sub.scores), int(sub.labels.sum())
        reason = None
        if n < min_samples:
            reason = f"{n} detections < min_samples_per_class={min_samples}"
        elif n_pos == 0 or n_pos == n:
            reason = f"all {n} detections are {'true' if n_pos else 'false'} positives"
        if reason is None:
            choice = choose_calibrator(sub.scores, sub.labels, sub.image_ids, methods, folds)
            if not all(np.isfinite(v) for k, v in choice.heldout_log_loss.items() if k == choice.method):
                reason = "too few images to cross-validate"
        if reason is not None:
            choice = CalibratorChoice(pooled.params, n, n_pos, {}, pooled.out_of_fold[mask], fallback=reason)
        else:
            fit.per_class[cid] = choice.params
        fit.choices[cid] = choice
        oof[mask] = choice.out_of_fold
    fit.out_of_fold = oof
    return fit


# -- calibrator.pth ----------------------------------------------------------------------------------
def save_calibrator_file(
    path, class_names: list[str], calibration: dict[str, dict], thresholds: dict[str, float]
) -> None:
    """calibrator.pth: strings, numbers and tensors only, so `torch.load(weights_only=True)` reads it."""
    import io

    import torch

    from ..fsio import atomic_write_bytes

    def tensors(params: dict) -> dict:
        return {k: v if k == "method" else torch.tensor(v, dtype=torch.float64) for k, v in params.items()}

    payload = {
        "version": 1,
        "class_names": list(class_names),
        "calibration": {name: tensors(p) for name, p in calibration.items()},
        "thresholds": torch.tensor(
            [float(thresholds.get(n, float("nan"))) for n in class_names], dtype=torch.float64
        ),
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_calibrator_file(path) -> dict:
    """calibrator.pth back as plain dicts (the format of `marauder.runtime.calibration`)."""
    import torch

    raw = torch.load(path, map_location="cpu", weights_only=True)

    def plain(params: dict) -> dict:
        out = {}
        for k, v in params.items():
            out[k] = v if k == "method" else (v.item() if v.ndim == 0 else v.tolist())
        return out

    return {
        "class_names": list(raw["class_names"]),
        "calibration": {n: plain(p) for n, p in raw["calibration"].items()},
        "thresholds": dict(zip(raw["class_names"], raw["thresholds"].tolist())),
    }
