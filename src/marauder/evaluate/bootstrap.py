"""Percentile bootstrap over images for a ratio of sums (recall = true positives / labelled boxes).

Images, not boxes, are resampled: boxes of one image are not independent (same scene, same
visibility), so resampling boxes would make the interval too narrow.
"""

from __future__ import annotations

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
