"""`PipelineSpec`: what a calibrated pipeline is. pipeline_config.yaml and deployment_config.yaml are both one.

models -> TTA views -> fusion -> per-class calibration -> per-class thresholds:
  class_names, imgsz, models (name, a model file, confidence_threshold before fusion), tta, fusion,
  raw_confidence, calibration (class name -> calibrator, `__pooled__` the fallback), thresholds (class
  name -> operating threshold on the calibrated score), critical_species.
A deployment package adds how the vehicle runs it (`PACKAGE_KEYS`: nms_iou, max_det, capture, energy,
export, check_images, pipeline_config) and names each model's ONNX file and TensorRT engine; the
training side's pipeline_config.yaml names each model's `path` (.pt, .onnx or .engine).

`parse_spec` checks a parsed document once, for both files: unknown keys, types, ranges, class names,
fusion options and calibrators (a tagged union on `method`, `marauder.runtime.calibration.PARAMS`). It
raises `SpecError` with every problem as (dotted key, message), so the training side can add file lines
and the vehicle can list them all. Nothing is implied: a spec without `tta` runs the identity view only.
numpy and the standard library only: this file runs on the vehicle (Python 3.8).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import numpy as np

from .calibration import PARAMS as CALIBRATOR_PARAMS
from .calibration import apply_calibrator
from .fusion import CONF_TYPES
from .fusion import METHODS as FUSION_METHODS

POOLED = "__pooled__"
FUSION_KEYS = ("method", "iou_threshold", "skip_box_threshold", "weights", "conf_type", "sigma")
FUSION_DEFAULTS = {"method": "wbf", "iou_threshold": 0.55, "skip_box_threshold": 0.001, "weights": None,
                   "conf_type": "avg"}
TTA_DEFAULTS = {"enabled": False, "hflip": False, "vflip": False, "rotations": [], "scales": [1.0]}
ROTATIONS = (90, 180, 270)
PACKAGE_KEYS = ("nms_iou", "max_det", "capture", "energy", "export", "check_images", "pipeline_config")


class SpecError(ValueError):
    """Every problem of a pipeline description, as (dotted key, message)."""

    def __init__(self, problems: list):
        self.problems = list(problems)
        super().__init__("; ".join(f"{key}: {message}" for key, message in self.problems))


@dataclass
class ModelSpec:
    name: str
    confidence_threshold: float = 0.001  # applied to this model's boxes before fusion
    path: str | None = None  # pipeline_config.yaml: .pt, .onnx or .engine, relative to the file
    onnx: str | None = None  # a package: the ONNX file, relative to the package
    engine: str | None = None  # a package: the TensorRT engine built on the device
    architecture: str = ""
    input_hw: list[int] | None = None
    batch: int | None = None
    dynamic_batch: bool | None = None
    onnx_sha256: str | None = None


@dataclass
class PipelineSpec:
    class_names: list[str]
    models: list[ModelSpec]
    version: int = 1
    imgsz: int = 640
    tta: dict = field(default_factory=lambda: copy.deepcopy(TTA_DEFAULTS))
    fusion: dict = field(default_factory=lambda: dict(FUSION_DEFAULTS))
    raw_confidence: float = 0.01
    calibrator: str | None = None  # a calibrator.pth to read when `calibration` is empty
    calibration: dict = field(default_factory=dict)
    thresholds: dict = field(default_factory=dict)
    critical_species: list[str] = field(default_factory=list)
    # a deployment package's
    nms_iou: float = 0.6
    max_det: int = 300
    capture: dict = field(default_factory=dict)
    energy: dict = field(default_factory=dict)
    export: dict = field(default_factory=dict)
    check_images: list[str] = field(default_factory=list)
    pipeline_config: str | None = None  # the pipeline_config.yaml a package was built from

    def __post_init__(self):  # every spec is checked, parsed from a file or built in code
        found = problems(self.to_mapping(package=True))
        if found:
            raise SpecError(found)
        self.tta = dict(copy.deepcopy(TTA_DEFAULTS), **self.tta)
        self.fusion = dict(FUSION_DEFAULTS, **self.fusion)

    @property
    def model_names(self) -> list:
        return [m.name for m in self.models]

    def to_mapping(self, package: bool) -> dict:
        """Plain YAML/JSON types; without the package's keys unless `package`. Unset model fields are left out."""
        doc = asdict(self)
        doc["models"] = [{k: v for k, v in m.items() if v is not None} for m in doc["models"]]
        if not package:
            doc = {k: v for k, v in doc.items() if k not in PACKAGE_KEYS}
        return doc


# -- checking a parsed document ---------------------------------------------------------------------
def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and bool(np.isfinite(v))


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _in(lo, hi, lo_open=False):
    def check(v):
        if not _is_number(v):
            return f"must be a number, got {v!r}"
        if (v <= lo if lo_open else v < lo) or (hi is not None and v > hi):
            return "must be in {}{}, {}]".format("(" if lo_open else "[", lo, hi if hi is not None else "inf")
        return None
    return check


def _int_at_least(lo):
    def check(v):
        return None if _is_int(v) and v >= lo else f"must be an integer >= {lo}, got {v!r}"
    return check


def _of(kind, name):
    def check(v):
        ok = isinstance(v, bool) if kind is bool else isinstance(v, kind) and not isinstance(v, bool)
        return None if ok else f"must be {name}, got {v!r}"
    return check


def _optional(check):
    return lambda v: None if v is None else check(v)


def _list_of(item_check, name):
    def check(v):
        if not isinstance(v, list):
            return f"must be a list of {name}, got {v!r}"
        bad = [x for x in v if item_check(x)]
        return f"must be a list of {name}; {bad[0]!r} is not" if bad else None
    return check


_STR, _BOOL, _MAP = _of(str, "text"), _of(bool, "true or false"), _of(dict, "a mapping")
_STRS = _list_of(_STR, "names")
_UNIT = _in(0.0, 1.0)

MODEL_FIELDS = {
    "name": _STR, "confidence_threshold": _UNIT, "path": _optional(_STR), "onnx": _optional(_STR),
    "engine": _optional(_STR), "architecture": _STR,
    "input_hw": _optional(_list_of(_int_at_least(1), "sizes")), "batch": _optional(_int_at_least(1)),
    "dynamic_batch": _optional(_BOOL), "onnx_sha256": _optional(_STR),
}
TTA_FIELDS = {
    "enabled": _BOOL, "hflip": _BOOL, "vflip": _BOOL,
    "rotations": _list_of(lambda r: None if r in ROTATIONS and _is_int(r) else "no", f"angles of {list(ROTATIONS)}"),
    "scales": _list_of(_in(0.0, None, lo_open=True), "scales > 0"),
}
FUSION_FIELDS = {
    "method": lambda v: None if v in FUSION_METHODS else f"'{v}' is not one of {list(FUSION_METHODS)}",
    "iou_threshold": _in(0.0, 1.0, lo_open=True), "skip_box_threshold": _UNIT,
    "weights": _optional(_list_of(_in(0.0, None), "weights >= 0")),
    "conf_type": lambda v: None if v in CONF_TYPES else f"'{v}' is not one of {list(CONF_TYPES)}",
    "sigma": _in(0.0, None, lo_open=True),
}
TOP_FIELDS = {
    "version": lambda v: None if v == 1 else f"this Marauder reads version 1, got {v!r}",
    "class_names": _STRS, "models": _of(list, "a list of models"), "imgsz": _int_at_least(32),
    "tta": _MAP, "fusion": _MAP, "raw_confidence": _UNIT, "calibrator": _optional(_STR),
    "calibration": _MAP, "thresholds": _MAP, "critical_species": _STRS,
    "nms_iou": _in(0.0, 1.0, lo_open=True), "max_det": _int_at_least(1), "capture": _MAP, "energy": _MAP,
    "export": _MAP, "check_images": _STRS, "pipeline_config": _optional(_STR),
}
REQUIRED = ("class_names", "models")


def _fields(doc: dict, table: dict, prefix: str) -> list:
    """Unknown keys and values their check refuses, as (dotted key, message)."""
    out = []
    for key, value in doc.items():
        check = table.get(key)
        if check is None:
            out.append((prefix + str(key), f"unknown key; expected one of {sorted(table)}"))
        else:
            problem = check(value)
            if problem:
                out.append((prefix + str(key), problem))
    return out


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


def problems(doc) -> list:
    """(dotted key, message) for every problem of a pipeline description (a parsed YAML/JSON mapping)."""
    if not isinstance(doc, dict):
        return [("", f"expected a mapping at the top level, got {type(doc).__name__}")]
    out = [(key, "missing") for key in REQUIRED if key not in doc]
    out += _fields(doc, TOP_FIELDS, "")
    models = doc.get("models") if isinstance(doc.get("models"), list) else []
    if "models" in doc and not models:
        out.append(("models", "is empty; a pipeline needs at least one model"))
    for i, model in enumerate(models):
        key = f"models.{i}"
        if not isinstance(model, dict):
            out.append((key, f"must be a mapping with a 'name', got {model!r}"))
            continue
        out += [(f"{key}.name", "missing")] if "name" not in model else []
        out += [(key, "names no model file ('path', or 'onnx' in a package)")] \
            if not (model.get("path") or model.get("onnx")) else []
        out += _fields(model, MODEL_FIELDS, key + ".")
    for section, table in (("tta", TTA_FIELDS), ("fusion", FUSION_FIELDS)):
        if isinstance(doc.get(section), dict):
            out += _fields(doc[section], table, section + ".")
    names = list(doc.get("class_names") or [])
    for section in ("thresholds", "calibration"):
        unknown = [n for n in (doc.get(section) or {}) if n not in names and n != POOLED]
        if unknown:
            out.append((section, f"names unknown classes {unknown}; class_names are {names}"))
    for name, value in (doc.get("thresholds") or {}).items():
        if not _is_number(value) or not 0.0 <= float(value) <= 1.0:
            out.append((f"thresholds.{name}", f"must be a number in [0, 1], got {value!r}"))
    for name, params in (doc.get("calibration") or {}).items():
        problem = calibrator_problem(params)
        if problem:
            out.append((f"calibration.{name}", problem))
    weights = (doc.get("fusion") or {}).get("weights") if isinstance(doc.get("fusion"), dict) else None
    if isinstance(weights, list):
        if len(weights) != len(models):
            out.append(("fusion.weights", f"{len(weights)} entries for {len(models)} models"))
        elif weights and all(_is_number(w) for w in weights) and max(weights) <= 0:
            out.append(("fusion.weights", "at least one weight must be > 0"))
    return out


def parse_spec(doc) -> PipelineSpec:
    """The `PipelineSpec` of a parsed document, or `SpecError` with every problem."""
    found = problems(doc)  # before building: a model with an unknown key cannot become a ModelSpec
    if found:
        raise SpecError(found)
    doc = copy.deepcopy(doc)
    doc["models"] = [ModelSpec(**m) for m in doc["models"]]
    return PipelineSpec(**doc)


def fusion_options(fusion) -> dict:
    """The `fuse` keywords of a fusion section (a mapping or a `FusionConfig`)."""
    if hasattr(fusion, "model_dump"):
        fusion = fusion.model_dump()
    return {k: v for k, v in (fusion or {"method": "wbf"}).items() if k in FUSION_KEYS}


def threshold_array(thresholds, class_names, raw_confidence: float) -> np.ndarray:
    """class id -> operating threshold; a class without one keeps everything down to raw_confidence."""
    thresholds = thresholds or {}
    return np.array([float(thresholds.get(n, raw_confidence)) for n in class_names], dtype=np.float32)
