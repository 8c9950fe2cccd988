"""Test-time augmentation outside the model, on our `Detections`.

Each view is a flip, a rotation by a multiple of 90 degrees, or a rescale of the original image.
The predictor sees the transformed images; their boxes are mapped back to the original image with
the exact inverse of the transform, so TTA works the same for .pt, .onnx and TensorRT predictors.

Coordinates are continuous pixel coordinates (a W-pixel-wide image spans x in [0, W]), so flips and
quarter turns map axis-aligned boxes onto axis-aligned boxes with no rounding at all, and a rescale
is a per-axis multiplication by (new size / old size).
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
        """(height, width) of the transformed image."""
        h, w = image_size
        if self.rotation in (90, 270):
            h, w = w, h
        if self.scale != 1.0:
            h, w = max(1, round(h * self.scale)), max(1, round(w * self.scale))
        return int(h), int(w)


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


# -- images -------------------------------------------------------------------------------------------
def transform_image(image: np.ndarray, view: View) -> np.ndarray:
    """Apply a view to an HxWxC (or HxW) image: the edge runtime's code, so both pipelines agree."""
    return runtime_tta.transform_image(image, view)


# -- boxes ------------------------------------------------------------------------------------------
def _rot_ccw(xyxy: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """Quarter turn counter-clockwise of boxes in an image of `size` (h, w): (x, y) -> (y, w - x)."""
    h, w = size
    x1, y1, x2, y2 = xyxy.T
    return np.stack([y1, w - x2, y2, w - x1], axis=1), (w, h)


def _rot_cw(xyxy: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """Quarter turn clockwise (inverse of `_rot_ccw`): (x, y) -> (h - y, x)."""
    h, w = size
    x1, y1, x2, y2 = xyxy.T
    return np.stack([h - y2, x1, h - y1, x2], axis=1), (w, h)


def _hflip(xyxy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w = size[1]
    return np.stack([w - xyxy[:, 2], xyxy[:, 1], w - xyxy[:, 0], xyxy[:, 3]], axis=1)


def _vflip(xyxy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h = size[0]
    return np.stack([xyxy[:, 0], h - xyxy[:, 3], xyxy[:, 2], h - xyxy[:, 1]], axis=1)


def _scale_factors(scale: float, rotated_size: tuple[int, int]) -> np.ndarray:
    """Per-axis (x, y, x, y) factors of the rescale step, from the exact integer sizes."""
    h, w = rotated_size
    oh, ow = View(scale=scale).output_size(rotated_size)
    return np.array([ow / w, oh / h, ow / w, oh / h], dtype=np.float64)


def boxes_to_view(xyxy, view: View, image_size: tuple[int, int]) -> np.ndarray:
    """Map boxes of the original image (h, w) into the view's image (float64)."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    size = (int(image_size[0]), int(image_size[1]))
    if view.hflip:
        b = _hflip(b, size)
    if view.vflip:
        b = _vflip(b, size)
    for _ in range(view.rotation // 90):
        b, size = _rot_ccw(b, size)
    if view.scale != 1.0:
        b = b * _scale_factors(view.scale, size)
    return b


def boxes_from_view(xyxy, view: View, image_size: tuple[int, int]) -> np.ndarray:
    """Map boxes predicted on the view's image back to the original image (h, w): exact inverse."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    size = (int(image_size[0]), int(image_size[1]))
    turns = view.rotation // 90
    rotated = (size[1], size[0]) if turns % 2 else size
    if view.scale != 1.0:
        b = b / _scale_factors(view.scale, rotated)
    size = rotated
    for _ in range(turns):
        b, size = _rot_cw(b, size)
    if view.vflip:
        b = _vflip(b, size)
    if view.hflip:
        b = _hflip(b, size)
    return b


def detections_from_view(dets: Detections, view: View, image_size: tuple[int, int]) -> Detections:
    """A view's detections expressed in the original image."""
    if view.is_identity:
        return Detections(dets.xyxy, dets.scores, dets.class_ids, image_size, dict(dets.extra))
    xyxy = boxes_from_view(dets.xyxy, view, image_size)
    h, w = image_size
    xyxy = np.clip(xyxy, 0, [w, h, w, h])  # resampling can put an edge a hair outside the image
    return Detections(xyxy, dets.scores, dets.class_ids, image_size, dict(dets.extra))


# -- prediction ---------------------------------------------------------------------------------------
def predict_views(predictor, images: Sequence[np.ndarray], views: Sequence[View]) -> list[list[Detections]]:
    """Every view of every image through the predictor in ONE `predict` call.

    Returns `out[i][v]`: image i's detections from view v, in image i's own coordinates.
    """
    batch, index = [], []
    for i, image in enumerate(images):
        for v, view in enumerate(views):
            batch.append(image if view.is_identity else transform_image(image, view))
            index.append((i, v))
    raw = predictor.predict(batch) if batch else []
    out: list[list[Detections]] = [[None] * len(views) for _ in images]  # type: ignore[list-item]
    for (i, v), dets in zip(index, raw):
        size = tuple(images[i].shape[:2])
        out[i][v] = detections_from_view(dets, views[v], size)
    return out
