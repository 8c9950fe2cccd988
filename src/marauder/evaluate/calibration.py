"""Score calibration of a detector: expected calibration error and the reliability curve.

A detection counts as correct when COCO matching at IoU 0.5 pairs it with a labelled box of its
class. Scores are binned into equal-width bins; ECE is the count-weighted mean |accuracy - mean
score| over the bins. This is the one ECE of the project: the evaluation report, the calibration
report and the benchmarks all use it, with ECE_BINS bins unless configured (evaluation.ece_bins).
"""

from __future__ import annotations

import numpy as np

ECE_BINS = 10


def binning(bins: int = ECE_BINS) -> str:
    """How the reports state the binning."""
    return f"{bins} equal-width score bins"


def expected_calibration_error(scores, correct, bins: int = ECE_BINS) -> float:
    """nan when there are no scores."""
    return reliability(scores, correct, bins)["ece"]


def reliability(scores: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> dict:
    """{"ece", "bin_lower", "bin_upper", "mean_score", "accuracy", "count"} (empty bins: nan)."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    correct = np.asarray(correct, dtype=np.float64).reshape(-1)
    if scores.shape != correct.shape:
        raise ValueError(f"{scores.size} scores but {correct.size} correctness flags")
    edges = np.linspace(0.0, 1.0, bins + 1)
    # bin i holds (edges[i], edges[i+1]]; a score of exactly 0 goes to the first bin
    idx = np.clip(np.searchsorted(edges, scores, side="left") - 1, 0, bins - 1)
    count = np.bincount(idx, minlength=bins).astype(np.float64)
    sum_score = np.bincount(idx, weights=scores, minlength=bins)
    sum_correct = np.bincount(idx, weights=correct, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_score = np.where(count > 0, sum_score / count, np.nan)
        accuracy = np.where(count > 0, sum_correct / count, np.nan)
    total = count.sum()
    ece = float(np.nansum(count * np.abs(accuracy - mean_score)) / total) if total else float("nan")
    return {"ece": ece, "bin_lower": edges[:-1].tolist(), "bin_upper": edges[1:].tolist(),
            "mean_score": mean_score.tolist(), "accuracy": accuracy.tolist(), "count": count.astype(int).tolist()}
