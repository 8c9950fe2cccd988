"""Predictors over exported models, built on the edge runtime so Python and Jetson share one code path.

`OnnxPredictor("model.onnx")` (ONNX Runtime) and `TensorRTPredictor("model.engine")` implement the
Predictor protocol: `class_names` and `predict(list of BGR arrays) -> list[Detections]`.
`load_predictor` routes .onnx and .engine files here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MarauderError
from ..runtime.backends import OnnxBackend, TensorRTBackend
from ..runtime.detector import Detector
from ..runtime.errors import EdgeError
from ..types import Detections


class _RuntimePredictor:
    def __init__(self, backend, *, conf: float = 0.001, iou: float = 0.6, max_det: int = 300,
                 class_names: list[str] | None = None, imgsz: int | None = None, **_ignored):
        self.detector = Detector(backend, conf=conf, iou=iou, max_det=max_det, class_names=class_names)
        self.class_names = self.detector.class_names
        self.imgsz = backend.input_hw  # an export has one input size; a different `imgsz` option is ignored
        self.stride = backend.stride

    def predict(self, images: list[np.ndarray], imgsz=None) -> list[Detections]:
        """`imgsz` ((h, w)): run at another input size; only a dynamic-shape export accepts one."""
        try:
            return self.detector.predict(images, imgsz=imgsz)
        except EdgeError as exc:
            raise MarauderError(str(exc)) from None


class OnnxPredictor(_RuntimePredictor):
    """An ONNX model through ONNX Runtime (CUDA provider when available, else CPU).

    Options: conf (0.001), iou (0.6), max_det (300), class_names (default: the ONNX metadata),
    threads (intra-op threads), providers (onnxruntime provider list). `imgsz` is accepted for
    interface compatibility; the model's exported input size is what runs.
    """

    def __init__(self, path: str | Path, *, threads: int | None = None, providers: list[str] | None = None,
                 **options):
        self.path = Path(path)
        try:
            backend = OnnxBackend(self.path, providers=providers, threads=threads)
        except EdgeError as exc:
            raise MarauderError(str(exc), file=str(self.path)) from None
        super().__init__(backend, **options)


class TensorRTPredictor(_RuntimePredictor):
    """A serialized TensorRT engine (needs TensorRT and cuda-python; built on this same GPU)."""

    def __init__(self, path: str | Path, **options):
        self.path = Path(path)
        try:
            backend = TensorRTBackend(self.path)
        except EdgeError as exc:
            raise MarauderError(str(exc), file=str(self.path)) from None
        super().__init__(backend, **options)
