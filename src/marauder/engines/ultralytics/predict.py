"""Batched prediction with an Ultralytics model, returning our `Detections` per image."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...types import Detections
from .models import class_names_of, load_yolo


def results_to_detections(result) -> Detections:
    boxes = result.boxes
    h, w = result.orig_shape
    if boxes is None or len(boxes) == 0:
        return Detections.empty((h, w))
    return Detections(
        boxes.xyxy.cpu().numpy(), boxes.conf.cpu().numpy(), boxes.cls.cpu().numpy().astype(np.int64), (h, w)
    )


class UltralyticsPredictor:
    """Predictor over a .pt checkpoint: `predict(list of BGR arrays) -> list[Detections]`."""

    def __init__(self, weights: str | Path, *, imgsz: int = 640, conf: float = 0.001, iou: float = 0.6,
                 device: str | None = None, max_det: int = 300, batch: int = 16):
        self.weights = Path(weights)
        self.model = load_yolo(weights)
        self.class_names = class_names_of(self.model)
        self.imgsz, self.conf, self.iou, self.device = imgsz, conf, iou, device
        self.max_det, self.batch = max_det, batch

    def predict(self, images: list[np.ndarray]) -> list[Detections]:
        out: list[Detections] = []
        for start in range(0, len(images), self.batch):
            chunk = images[start:start + self.batch]
            results = self.model.predict(
                chunk, imgsz=self.imgsz, conf=self.conf, iou=self.iou, device=self.device,
                max_det=self.max_det, verbose=False, batch=len(chunk),
            )
            out.extend(results_to_detections(r) for r in results)
        return out

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        """Pooled backbone features (N, D) for diversity sampling."""
        feats = self.model.embed(images, imgsz=self.imgsz, device=self.device, verbose=False)
        return np.stack([f.cpu().numpy().reshape(-1) for f in feats])
