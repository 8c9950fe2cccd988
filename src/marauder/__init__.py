"""Marauder: underwater imagery to deployment-ready species detectors.

The public API, for use from Python (each is imported when first used, so `import marauder` stays
light):
    load_predictor(path, **options)  a .pt, .onnx, .engine or pipeline_config.yaml -> a Predictor whose
                                     predict(list of BGR images) returns one Detections per image
    Detections                       pixel xyxy boxes, scores and class ids of one image
    GroundTruth                      labelled boxes of one image (with COCO crowd regions)
    __version__
"""

from __future__ import annotations

__all__ = ["Detections", "GroundTruth", "__version__", "load_predictor"]
_LAZY = {"load_predictor": ("marauder.infer.predictor", "load_predictor"),
         "Detections": ("marauder.types", "Detections"), "GroundTruth": ("marauder.types", "GroundTruth")}


def __getattr__(name: str):
    if name == "__version__":  # importlib.metadata costs every CLI start ~70 ms: read it when asked
        from importlib import metadata

        try:
            return metadata.version("marauder")
        except metadata.PackageNotFoundError:  # run from a source tree that is not installed
            return "0+unknown"
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'marauder' has no attribute {name!r}")
