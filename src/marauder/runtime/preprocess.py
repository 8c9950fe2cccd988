"""Letterbox preprocessing, identical to Ultralytics' LetterBox(auto=False) + predictor.preprocess.

Resize keeping the aspect ratio (cv2.INTER_LINEAR), pad with grey 114 to the model's square input,
BGR -> RGB, HWC -> CHW, uint8 -> float32 / 255. `Letterbox` keeps the gains and pads so boxes can be
mapped back to the original image exactly as `ultralytics.utils.ops.scale_boxes` does.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

PAD_VALUE = 114


class Letterbox(NamedTuple):
    """How one image was fitted into the model input: per-axis gains and pixel pads."""

    gain_x: float
    gain_y: float
    pad_x: int
    pad_y: int
    orig_hw: tuple  # (height, width)


def letterbox(image: np.ndarray, new_shape: tuple, fit_shape: tuple | None = None) -> tuple:
    """Resize and pad a BGR uint8 image to `new_shape` (h, w). Returns (padded image, Letterbox).

    `fit_shape` (at most `new_shape`): fit the image into this smaller square instead, then pad the
    rest; a TTA rescale view uses it to run a small view on a fixed-size model input.
    """
    h0, w0 = image.shape[:2]
    fit = new_shape if fit_shape is None else fit_shape
    r = min(fit[0] / h0, fit[1] / w0)
    new_w, new_h = max(int(round(w0 * r)), 1), max(int(round(h0 * r)), 1)
    dw, dh = (new_shape[1] - new_w) / 2, (new_shape[0] - new_h) / 2
    # Ultralytics rounds the two sides with -0.1/+0.1 so an odd pad puts the extra pixel bottom/right
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    if (w0, h0) != (new_w, new_h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT,
                               value=(PAD_VALUE, PAD_VALUE, PAD_VALUE))
    return image, Letterbox(new_w / w0, new_h / h0, left, top, (h0, w0))


def to_blob(images: list, dtype=np.float32) -> np.ndarray:
    """Letterboxed BGR HWC uint8 images -> (N, 3, H, W) RGB in [0, 1]."""
    batch = np.stack(images) if len(images) > 1 else images[0][None]
    blob = np.ascontiguousarray(batch[..., ::-1].transpose(0, 3, 1, 2))
    out = blob.astype(np.float32)
    out /= 255.0
    return out if dtype is np.float32 else out.astype(dtype)


def scale_boxes(xyxy: np.ndarray, box: Letterbox) -> np.ndarray:
    """Map (N, 4) xyxy from model-input pixels back to the original image, clipped to it."""
    out = xyxy.astype(np.float32, copy=True)
    out[:, [0, 2]] -= box.pad_x
    out[:, [1, 3]] -= box.pad_y
    out[:, [0, 2]] /= box.gain_x
    out[:, [1, 3]] /= box.gain_y
    h0, w0 = box.orig_hw
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w0)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h0)
    return out
