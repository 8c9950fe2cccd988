"""Percentile bootstrap over images: a ratio of sums (recall = true positives / labelled boxes), and
the paired difference of any metric between two models on the same images.

Images, not boxes, are resampled: boxes of one image are not independent (same scene, same
visibility), so resampling boxes would make the interval too narrow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


def bootstrap_ratio_ci(numerator: np.ndarray, denominator: np.ndarray, n_resamples: int = 1000,
                       confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(point estimate, low, high) of sum(numerator) / sum(denominator), resampling rows.

    Resamples whose denominator is zero are dropped. With no resamples (or no data) the interval
    collapses to the point estimate (nan when the denominator is zero).
    """
    num = np.asarray(numerator, dtype=np.float64).reshape(-1)
    den = np.asarray(denominator, dtype=np.float64).reshape(-1)
    total = den.sum()
    point = float(num.sum() / total) if total > 0 else float("nan")
    n = num.size
    if n_resamples <= 0 or n == 0 or total <= 0:
        return point, point, point
    rng = np.random.default_rng(seed)
    # counts[b, i]: how often image i is drawn in resample b (same as drawing n indices)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(np.float64)
    num_b, den_b = counts @ num, counts @ den
    ratios = num_b[den_b > 0] / den_b[den_b > 0]
    if ratios.size == 0:
        return point, point, point
    alpha = (1 - confidence) / 2
    low, high = np.quantile(ratios, [alpha, 1 - alpha])
    return point, float(low), float(high)


@dataclass(frozen=True)
class PairedDelta:
    """metric(a) - metric(b) on the same images, with percentile intervals from the same resamples."""

    a: float
    b: float
    a_ci: tuple[float, float]
    b_ci: tuple[float, float]
    delta_ci: tuple[float, float]
    resamples: int

    @property
    def delta(self) -> float:
        return self.a - self.b

    @property
    def excludes_zero(self) -> bool:
        return bool(self.delta_ci[0] > 0 or self.delta_ci[1] < 0)


def paired_bootstrap(metric: Callable[[Sequence, Sequence], float], a: Sequence, b: Sequence, truth: Sequence,
                     n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> PairedDelta:
    """Resample image indices once per round and score both models on that same draw: the pairing
    removes the variation that comes from which images were drawn, so the delta's interval is much
    narrower than two separate intervals would suggest. `metric(predictions, truth) -> float` (e.g.
    mAP50 over a list of per-image detections); a round whose metric is nan (no labelled box drawn)
    is dropped."""
    n = len(truth)
    if not (len(a) == len(b) == n):
        raise ValueError(f"paired_bootstrap: {len(a)} and {len(b)} predictions for {n} images")
    point_a, point_b = float(metric(a, truth)), float(metric(b, truth))
    rng = np.random.default_rng(seed)
    draws_a, draws_b = [], []
    for _ in range(int(n_resamples) if n else 0):
        idx = rng.integers(0, n, n)
        sub_truth = [truth[i] for i in idx]
        va, vb = metric([a[i] for i in idx], sub_truth), metric([b[i] for i in idx], sub_truth)
        if np.isfinite(va) and np.isfinite(vb):
            draws_a.append(va)
            draws_b.append(vb)
    alpha = (1 - confidence) / 2

    def interval(values) -> tuple[float, float]:
        if not len(values):
            return (float("nan"), float("nan"))
        lo, hi = np.quantile(values, [alpha, 1 - alpha])
        return float(lo), float(hi)

    da, db = np.asarray(draws_a), np.asarray(draws_b)
    return PairedDelta(point_a, point_b, interval(da), interval(db), interval(da - db), len(da))
