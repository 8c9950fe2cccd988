"""Test-time augmentation views for the edge runtime (numpy/OpenCV port of marauder.infer.tta).

A view is the identity, a flip, a counter-clockwise quarter turn or a rescale; predictions on the
view are mapped back with the exact inverse transform. Same views, same maths as the Python
pipeline, so fused results agree.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np


class View(NamedTuple):
    hflip: bool = False
    vflip: bool = False
    rotation: int = 0  # degrees counter-clockwise
    scale: float = 1.0

    @property
    def is_identity(self) -> bool:
        return self == View()


def views_from_config(tta: dict) -> list:
    views = [View()]
    if not tta or not tta.get("enabled", False):
        return views
    if tta.get("hflip"):
        views.append(View(hflip=True))
    if tta.get("vflip"):
        views.append(View(vflip=True))
    views.extend(View(rotation=int(r)) for r in tta.get("rotations", []))
    views.extend(View(scale=float(s)) for s in tta.get("scales", [1.0]) if float(s) != 1.0)
    return list(dict.fromkeys(views))


def _scaled_size(size: tuple, scale: float) -> tuple:
    h, w = size
    return max(1, int(round(h * scale))), max(1, int(round(w * scale)))


def transform_image(image: np.ndarray, view: View) -> np.ndarray:
    out = image
    if view.hflip:
        out = out[:, ::-1]
    if view.vflip:
        out = out[::-1]
    if view.rotation:
        out = np.rot90(out, k=view.rotation // 90)
    if view.scale != 1.0:
        rotated = out.shape[:2]
        h, w = _scaled_size(rotated, view.scale)
        interp = cv2.INTER_AREA if view.scale < 1 else cv2.INTER_LINEAR
        out = cv2.resize(np.ascontiguousarray(out), (w, h), interpolation=interp)
    return np.ascontiguousarray(out)


def boxes_from_view(xyxy: np.ndarray, view: View, image_size: tuple) -> np.ndarray:
    """Boxes predicted on the view's image, mapped back to the original image (h, w); clipped."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    h, w = int(image_size[0]), int(image_size[1])
    turns = view.rotation // 90
    size = (w, h) if turns % 2 else (h, w)
    if view.scale != 1.0:
        oh, ow = _scaled_size(size, view.scale)
        b = b / np.array([ow / size[1], oh / size[0], ow / size[1], oh / size[0]])
    for _ in range(turns):  # clockwise quarter turns undo the counter-clockwise ones
        sh = size[0]
        x1, y1, x2, y2 = b.T
        b = np.stack([sh - y2, x1, sh - y1, x2], axis=1)
        size = (size[1], size[0])
    if view.vflip:
        b = np.stack([b[:, 0], size[0] - b[:, 3], b[:, 2], size[0] - b[:, 1]], axis=1)
    if view.hflip:
        b = np.stack([size[1] - b[:, 2], b[:, 1], size[1] - b[:, 0], b[:, 3]], axis=1)
    if not view.is_identity:
        b = np.clip(b, 0, [w, h, w, h])
    return b
