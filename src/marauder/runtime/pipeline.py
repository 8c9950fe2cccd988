"""The deployed pipeline: every model x TTA view -> fusion -> calibration -> per-class thresholds.

Built from a package's deployment_config.yaml. Each step mirrors the Python pipeline
(marauder.infer.pipeline_predictor.PipelinePredictor) so a package detects on the Jetson what it
detected at export: tests/integration/test_runtime_parity.py compares the two.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from .backends import open_backend
from .calibration import apply_per_class
from .config import load_deployment_config
from .detector import Detector, EdgeDetections
from .errors import BackendUnavailable, EngineMismatchError
from .fusion import fuse
from .package import verify_package
from .tta import predict_views, views_from_config

POOLED = "__pooled__"
log = logging.getLogger("marauder_edge")


def tensorrt_available() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def choose_model_file(package_dir: str, entry: dict, backend: str) -> str:
    """'tensorrt' needs the engine; 'onnx' the ONNX file; 'auto' prefers a built engine when it can run."""
    onnx = os.path.join(package_dir, entry["onnx"])
    engine = os.path.join(package_dir, entry["engine"]) if entry.get("engine") else None
    if backend == "tensorrt":
        if engine is None or not os.path.isfile(engine):
            raise BackendUnavailable("{}: no TensorRT engine for model '{}': build it on this device with "
                                     "./build_engines.sh".format(engine or package_dir, entry["name"]))
        return engine
    if backend == "auto" and engine and os.path.isfile(engine) and tensorrt_available():
        return engine
    return onnx


class EdgePipeline:
    """`predict(list of BGR images) -> list[EdgeDetections]` for a deployment package.

    Args:
        package_dir: folder with deployment_config.yaml (checksums are verified first).
        backend: 'auto', 'onnx' or 'tensorrt'.
        apply_thresholds: drop detections below their class's operating threshold (what the
            vehicle wants); False keeps everything down to raw_confidence (what mAP needs).
        calibrate: map scores through the fitted calibrators.
    """

    def __init__(self, package_dir, backend: str = "auto", apply_thresholds: bool = True,
                 calibrate: bool = True, verify: bool = True, threads=None, config=None):
        self.package_dir = str(package_dir)
        if verify:
            verify_package(self.package_dir)
        self.config = config if config is not None else load_deployment_config(self.package_dir)
        cfg = self.config
        self.class_names = list(cfg["class_names"])
        raw_conf = float(cfg.get("raw_confidence", 0.01))
        self.detectors, self.model_files = [], []
        for entry in cfg["models"]:
            path = choose_model_file(self.package_dir, entry, backend)
            try:
                model = open_backend(path, threads=threads)
            except (BackendUnavailable, EngineMismatchError) as exc:
                if backend != "auto" or not path.endswith(".engine"):
                    raise
                # the vehicle keeps working on ONNX Runtime; the message says how to fix the engine
                log.warning("%s; using %s with ONNX Runtime instead", exc, entry["onnx"])
                path = os.path.join(self.package_dir, entry["onnx"])
                model = open_backend(path, threads=threads)
            conf = max(float(entry.get("confidence_threshold", 0.001)), raw_conf)
            det = Detector(model, conf=conf, iou=float(cfg.get("nms_iou", 0.6)),
                           max_det=int(cfg.get("max_det", 300)), class_names=self.class_names)
            self.detectors.append(det)
            self.model_files.append(path)
        self.views = views_from_config(cfg.get("tta") or {})
        self.fusion = dict(cfg.get("fusion") or {"method": "wbf"})
        index = {n: i for i, n in enumerate(self.class_names)}
        calib = cfg.get("calibration") or {}
        self.per_class = {index[n]: p for n, p in calib.items() if n != POOLED} if calibrate else {}
        self.pooled = calib.get(POOLED) if calibrate else None
        thresholds = cfg.get("thresholds") or {}
        self.thresholds = np.array([float(thresholds.get(n, raw_conf)) for n in self.class_names], np.float32)
        self.apply_thresholds = apply_thresholds

    @property
    def backend_kind(self) -> str:
        return "+".join(sorted({d.backend.kind for d in self.detectors}))

    def predict_sources(self, images: list) -> list:
        """out[image] = list of EdgeDetections, one per (model, view), in original-image pixels."""
        out = [[] for _ in images]
        for det in self.detectors:
            mapped = predict_views(lambda batch, hw, det=det: det.predict(batch, input_hw=hw),
                                   images, self.views, det.input_hw, det.backend.stride)
            for i, per_view in enumerate(mapped):
                hw = images[i].shape[:2]
                out[i].extend(EdgeDetections(xyxy, d.scores, d.class_ids, hw) for d, xyxy in per_view)
        return out

    def fuse_sources(self, sources: list, image_hw: tuple) -> EdgeDetections:
        f = self.fusion
        skip = float(f.get("skip_box_threshold", 0.001))
        h, w = image_hw
        scale = np.array([w, h, w, h], dtype=np.float64)
        boxes, scores, labels = [], [], []
        for s in sources:
            keep = s.scores >= skip
            norm = np.clip(s.xyxy[keep].astype(np.float64) / scale, 0.0, 1.0)
            area = (norm[:, 2] > norm[:, 0]) & (norm[:, 3] > norm[:, 1])
            boxes.append(norm[area])
            scores.append(s.scores[keep][area].astype(np.float64))
            labels.append(s.class_ids[keep][area].astype(np.float64))
        if sum(len(s) for s in scores) == 0:
            return EdgeDetections(np.zeros((0, 4)), np.zeros(0), np.zeros(0), image_hw)
        base = f.get("weights")
        weights = None if base is None else [float(base[m]) for m in range(len(self.detectors))
                                             for _ in self.views]
        b, sc, lab = fuse(f.get("method", "wbf"), boxes, scores, labels, weights=weights,
                          iou_thr=float(f.get("iou_threshold", 0.55)), skip_box_thr=skip,
                          conf_type=f.get("conf_type", "avg"))
        fused = EdgeDetections(np.asarray(b, np.float64).reshape(-1, 4) * scale, sc,
                               np.rint(np.asarray(lab)).astype(np.int64), image_hw)
        order = np.lexsort((fused.xyxy[:, 1], fused.xyxy[:, 0], fused.class_ids, -fused.scores))
        return fused.select(order)

    def calibrate(self, dets: EdgeDetections) -> EdgeDetections:
        if not self.per_class and self.pooled is None:
            return dets
        scores = apply_per_class(dets.scores, dets.class_ids, self.per_class, self.pooled)
        out = EdgeDetections(dets.xyxy, scores, dets.class_ids, dets.image_hw)
        return out.select(np.argsort(-out.scores, kind="stable"))

    def predict(self, images: list) -> list:
        results = []
        for image, sources in zip(images, self.predict_sources(images)):
            dets = self.calibrate(self.fuse_sources(sources, image.shape[:2]))
            if self.apply_thresholds:
                dets = dets.select(dets.scores >= self.thresholds[dets.class_ids])
            results.append(dets)
        return results
