"""Test-time augmentation outside the model, on our `Detections`.

Each view is a flip, a rotation by a multiple of 90 degrees, or a rescale at the model input (see
marauder.runtime.tta, whose code this uses, so the Python pipeline and the edge runtime agree).
The predictor sees the transformed images; their boxes are mapped back to the original image with
the exact inverse of the transform, so TTA works the same for .pt, .onnx and TensorRT predictors.

Coordinates are continuous pixel coordinates (a W-pixel-wide image spans x in [0, W]), so flips and
quarter turns map axis-aligned boxes onto axis-aligned boxes with no rounding at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..runtime import tta as runtime_tta
from ..types import Detections


@dataclass(frozen=True)
class View:
    """One augmented view: optional flips, then a counter-clockwise quarter turn, then a rescale."""

    hflip: bool = False
    vflip: bool = False
    rotation: int = 0  # degrees counter-clockwise: 0, 90, 180 or 270
    scale: float = 1.0

    def __post_init__(self):
        if self.rotation not in (0, 90, 180, 270):
            raise ValueError(f"View: rotation must be 0, 90, 180 or 270, got {self.rotation}")
        if not self.scale > 0:
            raise ValueError(f"View: scale must be > 0, got {self.scale}")

    @property
    def name(self) -> str:
        parts = [p for p, on in (("hflip", self.hflip), ("vflip", self.vflip)) if on]
        if self.rotation:
            parts.append(f"rot{self.rotation}")
        if self.scale != 1.0:
            parts.append(f"scale{self.scale:g}")
        return "+".join(parts) or "identity"

    @property
    def is_identity(self) -> bool:
        return self == View()

    def output_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """(height, width) of the image after the flips and turn (a rescale happens at the model input)."""
        return runtime_tta.geometric_size(image_size, self)


def views_from_config(tta) -> list[View]:
    """The identity plus one view per enabled augmentation (a `TTAConfig`); identity only when disabled.

    Views are not combined with each other: each one costs a full forward pass.
    """
    views = [View()]
    if not tta.enabled:
        return views
    if tta.hflip:
        views.append(View(hflip=True))
    if tta.vflip:
        views.append(View(vflip=True))
    views.extend(View(rotation=int(r)) for r in tta.rotations)
    views.extend(View(scale=float(s)) for s in tta.scales if float(s) != 1.0)
    return list(dict.fromkeys(views))  # drop duplicates, keep order


# -- images and boxes: the edge runtime's code, so both pipelines agree -------------------------------
transform_image = runtime_tta.transform_image
boxes_to_view = runtime_tta.boxes_to_view
boxes_from_view = runtime_tta.boxes_from_view


# -- prediction ---------------------------------------------------------------------------------------
def predictor_input_hw(predictor) -> tuple[int, int]:
    size = getattr(predictor, "imgsz", None)
    if size is None:
        raise ValueError(f"{type(predictor).__name__} has no input size (imgsz); a TTA scale view needs one")
    return (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))


def predict_views(predictor, images: Sequence[np.ndarray], views: Sequence[View]) -> list[list[Detections]]:
    """Every view of every image through the predictor: one `predict` call per model input size.

    Returns `out[i][v]`: image i's detections from view v, in image i's own coordinates.
    """
    input_hw = predictor_input_hw(predictor) if any(v.scale != 1.0 for v in views) else None

    def run(batch, run_hw):
        if run_hw == input_hw:
            return predictor.predict(batch)
        return predictor.predict(batch, imgsz=run_hw)  # an upscaled view runs at a larger input

    stride = int(getattr(predictor, "stride", 32))
    mapped = runtime_tta.predict_views(run, list(images), list(views), input_hw, stride)
    return [
        [Detections(xyxy, d.scores, d.class_ids, tuple(images[i].shape[:2]), dict(d.extra)) for d, xyxy in per_view]
        for i, per_view in enumerate(mapped)
    ]
