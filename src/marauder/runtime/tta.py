"""Test-time augmentation views, shared by the edge runtime and the Python pipeline (numpy/OpenCV).

A view is a flip, a counter-clockwise quarter turn, or a rescale. Flips and turns are pixel-exact
operations on the image. A rescale is defined at the model input, as Ultralytics' `augment` does it:
scale `s` means the model sees the image at `s` times its input size. For s < 1 the image is
letterboxed into the smaller square and padded out to the model's own input, so any backend (a static
ONNX or TensorRT engine too) runs it; for s > 1 the model runs at the larger input rounded up to the
stride, which needs a backend that accepts it (a .pt, or a dynamic-shape ONNX export). Resizing the
image before the predictor's own letterbox would be undone by that letterbox, so the view would cost
a forward pass and add nothing.

Predictions on a view map back with the exact inverse transform.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .detections import Detections
from .preprocess import Letterbox, letterbox


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

    def output_size(self, image_size: tuple) -> tuple:
        """(height, width) of the image after the flips and turn (a rescale happens at the model input)."""
        return geometric_size(image_size, self)


def views_from_config(tta) -> list:
    """The identity plus one view per enabled augmentation; identity only when disabled.

    `tta`: a `PipelineSpec.tta` mapping (either pipeline file) or the training config's `TTAConfig`. Views
    are not combined with each other: each one costs a full forward pass.
    """
    if hasattr(tta, "model_dump"):
        tta = tta.model_dump()
    views = [View()]
    if not tta or not tta.get("enabled", False):
        return views
    if tta.get("hflip"):
        views.append(View(hflip=True))
    if tta.get("vflip"):
        views.append(View(vflip=True))
    views.extend(View(rotation=int(r)) for r in tta.get("rotations", []))
    views.extend(View(scale=float(s)) for s in tta.get("scales", [1.0]) if float(s) != 1.0)
    return list(dict.fromkeys(views))  # drop duplicates, keep order


# -- flips and quarter turns (pixel-exact) ----------------------------------------------------------
def transform_image(image: np.ndarray, view) -> np.ndarray:
    """The view's flips and quarter turn applied to an HxWxC (or HxW) image; the scale is not."""
    out = image
    if view.hflip:
        out = out[:, ::-1]
    if view.vflip:
        out = out[::-1]
    if view.rotation:
        out = np.rot90(out, k=view.rotation // 90)
    return np.ascontiguousarray(out)


def geometric_size(image_size: tuple, view) -> tuple:
    """(h, w) of the image after the view's flips and quarter turn."""
    h, w = int(image_size[0]), int(image_size[1])
    return (w, h) if (view.rotation // 90) % 2 else (h, w)


def boxes_to_view(xyxy, view, image_size: tuple) -> np.ndarray:
    """Boxes of the original image (h, w) mapped through the view's flips and quarter turn."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    h, w = int(image_size[0]), int(image_size[1])
    if view.hflip:
        b = np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], axis=1)
    if view.vflip:
        b = np.stack([b[:, 0], h - b[:, 3], b[:, 2], h - b[:, 1]], axis=1)
    for _ in range(view.rotation // 90):  # (x, y) -> (y, w - x), then the image is w x h
        x1, y1, x2, y2 = b.T
        b = np.stack([y1, w - x2, y2, w - x1], axis=1)
        h, w = w, h
    return b


def boxes_from_view(xyxy, view, image_size: tuple) -> np.ndarray:
    """Exact inverse of `boxes_to_view`: boxes on the flipped/turned image back to the original (h, w)."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    size = geometric_size(image_size, view)
    for _ in range(view.rotation // 90):  # clockwise quarter turns undo the counter-clockwise ones
        sh = size[0]
        x1, y1, x2, y2 = b.T
        b = np.stack([sh - y2, x1, sh - y1, x2], axis=1)
        size = (size[1], size[0])
    if view.vflip:
        b = np.stack([b[:, 0], size[0] - b[:, 3], b[:, 2], size[0] - b[:, 1]], axis=1)
    if view.hflip:
        b = np.stack([size[1] - b[:, 2], b[:, 1], size[1] - b[:, 0], b[:, 3]], axis=1)
    return b


# -- rescale at the model input -----------------------------------------------------------------------
def scaled_input(input_hw: tuple, scale: float, stride: int = 32) -> tuple:
    """((fit_h, fit_w), (run_h, run_w)): the square the image is letterboxed into, and the input size
    the model runs at (its own for s <= 1, the fit rounded up to the stride for s > 1)."""
    fit = (max(1, round(input_hw[0] * scale)), max(1, round(input_hw[1] * scale)))
    if scale <= 1:
        return fit, (int(input_hw[0]), int(input_hw[1]))
    return fit, tuple(int(math.ceil(v / stride) * stride) for v in fit)


def unletterbox(xyxy: np.ndarray, placed: Letterbox) -> np.ndarray:
    """Boxes on a letterboxed canvas back to the image that was placed on it (float64, unclipped)."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4) - np.array([placed.pad_x, placed.pad_y] * 2)
    return b / np.array([placed.gain_x, placed.gain_y] * 2)


class ViewInput(NamedTuple):
    """What the model is given for one view of one image."""

    image: np.ndarray
    run_hw: tuple | None  # the model input size to run it at
    placed: Letterbox | None  # how a rescale view placed the image on its canvas (None: not rescaled)


def view_input(image: np.ndarray, view, input_hw: tuple | None, stride: int = 32) -> ViewInput:
    """`input_hw` may be None when the view does not rescale (flips and turns ignore it)."""
    out = image if view.is_identity else transform_image(image, view)
    run_hw = None if input_hw is None else (int(input_hw[0]), int(input_hw[1]))
    if view.scale == 1.0:
        return ViewInput(out, run_hw, None)
    fit, run_hw = scaled_input(input_hw, view.scale, stride)
    canvas, placed = letterbox(out, run_hw, fit_shape=fit)
    return ViewInput(canvas, run_hw, placed)


def boxes_to_original(xyxy, view, image_size: tuple, placed: Letterbox | None) -> np.ndarray:
    """Boxes the model predicted on a view's input, in the original image (h, w), clipped to it."""
    if view.is_identity:
        return np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    b = unletterbox(xyxy, placed) if placed is not None else xyxy
    b = boxes_from_view(b, view, image_size)
    h, w = int(image_size[0]), int(image_size[1])
    return np.clip(b, 0, [w, h, w, h])  # resampling can put an edge a hair outside the image


def model_input_hw(model) -> tuple:
    """(h, w) a model runs at: its `imgsz` (an int or (h, w)), what a rescale view is relative to."""
    size = getattr(model, "imgsz", None)
    if size is None:
        raise ValueError(f"{type(model).__name__} has no input size (imgsz); a TTA scale view needs one")
    return (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))


def predict_views(model, images: list, views: list) -> list:
    """Every view of every image through one model: `out[i][v]`, image i's detections from view v in
    image i's own pixels.

    `model` is any predictor: `predict(images, imgsz=None) -> list[Detections]`, `imgsz`, `stride`.
    One `predict` call per distinct input size (one call in all unless a view upscales).
    """
    input_hw = model_input_hw(model) if any(v.scale != 1.0 for v in views) else None
    stride = int(getattr(model, "stride", 32))
    groups: dict = {}
    for i, image in enumerate(images):
        for v, view in enumerate(views):
            vin = view_input(image, view, input_hw, stride)
            groups.setdefault(vin.run_hw, []).append((i, v, vin))
    out = [[None] * len(views) for _ in images]
    for run_hw, items in groups.items():
        batch = [vin.image for _, _, vin in items]
        # a model's own size runs as a plain call, so a fixed-size backend never sees `imgsz`
        results = model.predict(batch) if run_hw == input_hw else model.predict(batch, imgsz=run_hw)
        for (i, v, vin), dets in zip(items, results):
            size = images[i].shape[:2]
            xyxy = boxes_to_original(dets.xyxy, views[v], size, vin.placed)
            out[i][v] = Detections(xyxy, dets.scores, dets.class_ids, size, dict(dets.extra))
    return out
