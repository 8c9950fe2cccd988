"""Score calibration maps, numpy only (the edge runtime uses this file without torch).

A calibrator is a plain dict, so it travels in YAML/JSON and in calibrator.pth alike:
  {"method": "identity"}
  {"method": "temperature", "t": 1.7}                  sigmoid(logit(s) / t)
  {"method": "platt", "a": 1.2, "b": -0.4}             sigmoid(a * logit(s) + b)
  {"method": "isotonic", "x": [...], "y": [...]}       piecewise-linear through (x, y), x increasing
"""

from __future__ import annotations

import numpy as np

EPS = 1e-6  # scores are clipped to [EPS, 1 - EPS] before a logit
# the tagged union: each method and the parameters it needs
PARAMS = {"identity": (), "temperature": ("t",), "platt": ("a", "b"), "isotonic": ("x", "y")}
METHODS = tuple(PARAMS)


def logit(p) -> np.ndarray:
    """log(p / (1 - p)) in float64, for the maps here and the fitters (marauder.calibrate.fit)."""
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def apply_calibrator(scores, params: dict) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    method = params.get("method", "identity")
    if method == "identity":
        out = s
    elif method == "temperature":
        out = _sigmoid(logit(s) / float(params["t"]))
    elif method == "platt":
        out = _sigmoid(float(params["a"]) * logit(s) + float(params["b"]))
    elif method == "isotonic":
        out = np.interp(s, np.asarray(params["x"], dtype=np.float64), np.asarray(params["y"], dtype=np.float64))
    else:
        raise ValueError(f"unknown calibration method '{method}'")
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def apply_per_class(scores, class_ids, per_class: dict, pooled: dict | None = None) -> np.ndarray:
    """Calibrate each detection with its class's map (keys: class index as int or str), else `pooled`."""
    scores = np.asarray(scores, dtype=np.float32)
    class_ids = np.asarray(class_ids, dtype=np.int64)
    out = scores.copy()
    for cid in np.unique(class_ids):
        params = per_class.get(int(cid), per_class.get(str(int(cid)), pooled))
        if params is None:
            continue
        mask = class_ids == cid
        out[mask] = apply_calibrator(scores[mask], params)
    return out
