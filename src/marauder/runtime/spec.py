"""What a calibrated pipeline is, checked once for pipeline_config.yaml and deployment_config.yaml.

Both files describe the same pipeline: `class_names`, `models`, `tta`, `fusion`, `raw_confidence`,
`calibration` (class name -> calibrator, `__pooled__` the fallback) and `thresholds` (class name ->
operating threshold on the calibrated score). The training side reads the first (pydantic adds key
lines to its errors), the vehicle the second (no pydantic there); both call `problems` here, so a
value is accepted or refused the same way wherever it is read.

A calibrator is a tagged union on `method`: each method names the parameters it needs
(`marauder.runtime.calibration.PARAMS`), and `calibrator_problem` refuses a missing one, an unknown method or a value the
map cannot use.
"""

from __future__ import annotations

import numpy as np

from .calibration import PARAMS as CALIBRATOR_PARAMS
from .calibration import apply_calibrator
from .fusion import CONF_TYPES
from .fusion import METHODS as FUSION_METHODS

POOLED = "__pooled__"
FUSION_KEYS = ("method", "iou_threshold", "skip_box_threshold", "weights", "conf_type", "sigma")


def calibrator_problem(params) -> str | None:
    """Why `params` is not a usable calibrator, or None."""
    if not isinstance(params, dict):
        return f"expected a mapping with a 'method', got {type(params).__name__}"
    method = params.get("method", "identity")
    if method not in CALIBRATOR_PARAMS:
        return f"method '{method}' is not one of {list(CALIBRATOR_PARAMS)}"
    missing = [k for k in CALIBRATOR_PARAMS[method] if k not in params]
    if missing:
        return f"method '{method}' needs {list(CALIBRATOR_PARAMS[method])}; missing {missing}"
    try:  # values a hand edit can break (a string temperature, x and y of different lengths)
        out = apply_calibrator(np.array([0.1, 0.5, 0.9]), params)
    except (KeyError, TypeError, ValueError) as exc:
        return f"unusable {method} parameters ({type(exc).__name__}: {exc})"
    if not np.all(np.isfinite(out)):
        return f"{method} parameters give non-finite scores"
    return None


def problems(cfg: dict) -> list:
    """(key, message) for every problem of a pipeline description (a parsed yaml/json mapping)."""
    out = []
    names = list(cfg.get("class_names") or [])
    for section in ("thresholds", "calibration"):
        unknown = [n for n in (cfg.get(section) or {}) if n not in names and n != POOLED]
        if unknown:
            out.append((section, f"names unknown classes {unknown}; class_names are {names}"))
    for name, value in (cfg.get("thresholds") or {}).items():
        if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
            out.append((f"thresholds.{name}", f"must be a number in [0, 1], got {value!r}"))
    for name, params in (cfg.get("calibration") or {}).items():
        problem = calibrator_problem(params)
        if problem:
            out.append((f"calibration.{name}", problem))
    fusion = cfg.get("fusion") or {}
    if fusion.get("method", "wbf") not in FUSION_METHODS:
        out.append(("fusion.method", f"'{fusion.get('method')}' is not one of {list(FUSION_METHODS)}"))
    if fusion.get("conf_type", "avg") not in CONF_TYPES:
        out.append(("fusion.conf_type", f"'{fusion.get('conf_type')}' is not one of {list(CONF_TYPES)}"))
    weights, models = fusion.get("weights"), cfg.get("models") or []
    if weights is not None and len(weights) != len(models):
        out.append(("fusion.weights", f"{len(weights)} entries for {len(models)} models"))
    return out


def fusion_options(fusion) -> dict:
    """The `fuse` keywords of a config's fusion section (a mapping or a `FusionConfig`)."""
    if hasattr(fusion, "model_dump"):
        fusion = fusion.model_dump()
    return {k: v for k, v in (fusion or {"method": "wbf"}).items() if k in FUSION_KEYS}


def threshold_array(thresholds, class_names, raw_confidence: float) -> np.ndarray:
    """class id -> operating threshold; a class without one keeps everything down to raw_confidence."""
    thresholds = thresholds or {}
    return np.array([float(thresholds.get(n, raw_confidence)) for n in class_names], dtype=np.float32)
