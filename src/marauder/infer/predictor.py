"""One prediction interface for every model kind.

`load_predictor(path)` returns an object with `class_names: list[str]` and
`predict(images: list[np.ndarray (BGR, HxWx3)]) -> list[Detections]`, whatever the model is:
  .pt            Ultralytics checkpoint (engines.ultralytics.predict)
  .onnx          ONNX Runtime via the edge runtime (marauder.runtime)
  .engine        TensorRT engine (where TensorRT is installed)
  .yaml / .yml   a calibrated pipeline (pipeline_config.yaml or deployment_config.yaml)
Every metric is computed from these Detections, so results are comparable across kinds.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import MarauderError
from ..types import Detections


class Predictor(Protocol):
    class_names: list[str]

    def predict(self, images: list[np.ndarray]) -> list[Detections]: ...


# suffix -> "module:factory"; each factory takes (path, **options)
_FACTORIES = {
    ".pt": "marauder.engines.ultralytics.predict:UltralyticsPredictor",
    ".onnx": "marauder.infer.onnx_predictor:OnnxPredictor",
    ".engine": "marauder.infer.onnx_predictor:TensorRTPredictor",
    ".yaml": "marauder.infer.pipeline_predictor:PipelinePredictor",
    ".yml": "marauder.infer.pipeline_predictor:PipelinePredictor",
}


def load_predictor(path: str | Path, **options) -> Predictor:
    path = Path(path)
    if not path.exists():
        raise MarauderError("model file not found", file=str(path))
    target = _FACTORIES.get(path.suffix.lower())
    if target is None:
        raise MarauderError(
            f"unsupported model kind '{path.suffix}'; expected one of {sorted(_FACTORIES)}", file=str(path)
        )
    module_name, attr = target.split(":")
    factory = getattr(importlib.import_module(module_name), attr)
    return factory(path, **options)
