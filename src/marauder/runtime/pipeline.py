"""The calibrated pipeline: every model x TTA view -> fusion -> calibration -> per-class thresholds.

`Pipeline` is the one implementation, for the training side and the vehicle alike. Its members are any
predictors (`class_names`, `imgsz`, `stride`, `predict(images, imgsz=None) -> list[Detections]`):
`EdgePipeline` builds one from a deployment package (ONNX Runtime / TensorRT members),
`marauder.infer.pipeline_predictor.PipelinePredictor` from pipeline_config.yaml (PyTorch, ONNX or
TensorRT members). Both files are checked by `marauder.runtime.spec` before a pipeline is built.
"""

from __future__ import annotations

import logging
import os

from .backends import open_backend
from .calibration import apply_per_class
from .config import load_deployment_config
from .detections import Detections
from .detector import Detector
from .errors import BackendUnavailable, EngineMismatchError
from .fusion import fuse
from .package import verify_package
from .spec import POOLED, fusion_options, threshold_array
from .tta import View, predict_views, views_from_config

log = logging.getLogger("marauder_edge")


def check_same_classes(members, names) -> list:
    """The class list every member shares, or a ValueError naming the two that disagree."""
    first = list(members[0].class_names)
    for member, name in zip(members[1:], names[1:]):
        if list(member.class_names) != first:
            raise ValueError(f"models have different class lists: {names[0]} has {first}, {name} has "
                             f"{list(member.class_names)}; every model of a pipeline must share one class list")
    return first


class Pipeline:
    """`predict(images) -> list[Detections]` through models x views, fusion, calibration, thresholds.

    Args:
        members: the models (predictor protocol, see the module docstring), sharing one class list.
        views: TTA views (default: identity only).
        fusion: `fuse` keywords (method, iou_threshold, skip_box_threshold, weights per member, conf_type).
        names: member names for messages and reports.
        calibration: class name -> calibrator dict, `__pooled__` the fallback (empty: raw scores).
        thresholds: per-class operating thresholds, indexed by class id (None: keep everything).
        apply_thresholds: drop detections below their class's threshold (what a vehicle wants); False
            keeps everything the members return (what mAP needs).
    """

    def __init__(self, members, views=None, fusion: dict | None = None, names=None, *, calibration=None,
                 thresholds=None, apply_thresholds: bool = False):
        self.members = list(members)
        if not self.members:
            raise ValueError("a pipeline needs at least one model")
        self.views = list(views or []) or [View()]
        self.names = list(names) if names else [f"model{i}" for i in range(len(self.members))]
        self.class_names = check_same_classes(self.members, self.names)
        self.fusion = dict(fusion or {})
        weights = self.fusion.get("weights")
        if weights is not None and len(weights) != len(self.members):
            raise ValueError(f"fusion.weights has {len(weights)} entries for {len(self.members)} models")
        index = {n: i for i, n in enumerate(self.class_names)}
        calibration = dict(calibration or {})
        unknown = [n for n in calibration if n != POOLED and n not in index]
        if unknown:
            raise ValueError(f"calibration names unknown classes {unknown}; class_names are {self.class_names}")
        self.per_class = {index[n]: p for n, p in calibration.items() if n != POOLED}
        self.pooled = calibration.get(POOLED)
        self.thresholds = thresholds
        self.apply_thresholds = apply_thresholds

    def predict_raw(self, images: list) -> list:
        """`out[image][model][view]`, boxes already mapped back to each original image."""
        per_model = [predict_views(m, images, self.views) for m in self.members]
        return [[per_model[m][i] for m in range(len(self.members))] for i in range(len(images))]

    def fuse_raw(self, raw: list, views=None, models=None) -> list:
        """Fuse chosen models and views of each image (default: all of them)."""
        views = list(range(len(self.views))) if views is None else list(views)
        models = list(range(len(self.members))) if models is None else list(models)
        base = self.fusion.get("weights")
        options = {k: v for k, v in self.fusion.items() if k != "weights"}
        weights = None if base is None else [float(base[m]) for m in models for _ in views]
        return [fuse([per_image[m][v] for m in models for v in views], weights=weights, **options)
                for per_image in raw]

    def calibrate(self, dets: Detections) -> Detections:
        if not self.per_class and self.pooled is None:
            return dets
        return dets.with_scores(apply_per_class(dets.scores, dets.class_ids, self.per_class, self.pooled)).sorted()

    def finish(self, fused: list) -> list:
        """Calibration, then (when asked) the per-class thresholds, on fused detections."""
        out = [self.calibrate(d) for d in fused]
        if self.apply_thresholds and self.thresholds is not None:
            out = [d.filter(self.thresholds) for d in out]
        return out

    def predict(self, images: list) -> list:
        return self.finish(self.fuse_raw(self.predict_raw(images)))


# -- a deployment package ---------------------------------------------------------------------------
def tensorrt_available() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def choose_model_file(package_dir: str, entry, backend: str) -> str:
    """'tensorrt' needs the engine; 'onnx' the ONNX file; 'auto' prefers a built engine when it can run.
    `entry`: a `ModelSpec` of the package."""
    onnx = os.path.join(package_dir, entry.onnx)
    engine = os.path.join(package_dir, entry.engine) if entry.engine else None
    if backend == "tensorrt":
        if engine is None or not os.path.isfile(engine):
            raise BackendUnavailable(f"{engine or package_dir}: no TensorRT engine for model '{entry.name}': "
                                     "build it on this device with ./build_engines.sh")
        return engine
    if backend == "auto" and engine and os.path.isfile(engine) and tensorrt_available():
        return engine
    return onnx


class EdgePipeline(Pipeline):
    """The `Pipeline` of a deployment package (deployment_config.yaml, checksums verified first).

    Args:
        package_dir: the package folder.
        backend: 'auto', 'onnx' or 'tensorrt'.
        apply_thresholds: drop detections below their class's operating threshold (what the
            vehicle wants); False keeps everything down to raw_confidence (what mAP needs).
        calibrate: map scores through the fitted calibrators.
        config: the package's `PipelineSpec`, when already loaded.
    """

    def __init__(self, package_dir, backend: str = "auto", apply_thresholds: bool = True,
                 calibrate: bool = True, verify: bool = True, threads=None, config=None):
        self.package_dir = str(package_dir)
        if verify:
            verify_package(self.package_dir)
        self.config = config if config is not None else load_deployment_config(self.package_dir)
        spec = self.config
        detectors, self.model_files = [], []
        for entry in spec.models:
            path = choose_model_file(self.package_dir, entry, backend)
            try:
                model = open_backend(path, threads=threads)
            except (BackendUnavailable, EngineMismatchError) as exc:
                if backend != "auto" or not path.endswith(".engine"):
                    raise
                # the vehicle keeps working on ONNX Runtime; the message says how to fix the engine
                log.warning("%s; using %s with ONNX Runtime instead", exc, entry.onnx)
                path = os.path.join(self.package_dir, entry.onnx)
                model = open_backend(path, threads=threads)
            detectors.append(Detector(model, conf=max(entry.confidence_threshold, spec.raw_confidence),
                                      iou=spec.nms_iou, max_det=spec.max_det, class_names=spec.class_names))
            self.model_files.append(path)
        super().__init__(detectors, views_from_config(spec.tta), fusion_options(spec.fusion), spec.model_names,
                         calibration=spec.calibration if calibrate else None,
                         thresholds=threshold_array(spec.thresholds, spec.class_names, spec.raw_confidence),
                         apply_thresholds=apply_thresholds)

    @property
    def detectors(self) -> list:
        return self.members

    @property
    def backend_kind(self) -> str:
        return "+".join(sorted({d.backend.kind for d in self.members}))
