"""One model end to end: letterbox -> backend -> decode + NMS -> boxes in original pixels."""

from __future__ import annotations

import time

import numpy as np

from .detections import Detections
from .errors import EdgeError
from .postprocess import decode
from .preprocess import letterbox, scale_boxes, to_blob


class Detector:
    """`predict(list of BGR uint8 images) -> list[Detections]` for one ONNX model or engine.

    `conf` and `iou` mean what they mean in Ultralytics' predict (strict score > conf, NMS suppresses
    IoU > iou), so results match `YOLO(model).predict` on the same file.
    """

    def __init__(self, backend, conf: float = 0.25, iou: float = 0.7, max_det: int = 300,
                 agnostic: bool = False, class_names=None):
        self.backend = backend
        self.conf, self.iou, self.max_det, self.agnostic = float(conf), float(iou), int(max_det), agnostic
        self.class_names = list(class_names or backend.class_names)
        self.input_hw = tuple(backend.input_hw)
        self.timing = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0, "images": 0}

    def _chunks(self, n: int):
        size = self.backend.batch or n  # dynamic batch: everything at once
        for start in range(0, n, max(size, 1)):
            yield start, min(start + size, n)

    @property
    def imgsz(self) -> tuple:
        return self.input_hw

    @property
    def stride(self) -> int:
        return self.backend.stride

    def predict(self, images: list, imgsz=None) -> list:
        """`imgsz` ((h, w)): run at this input size instead of the model's own (a dynamic-shape model only)."""
        input_hw = self.input_hw if imgsz is None else (int(imgsz[0]), int(imgsz[1]))
        if input_hw != self.input_hw and not getattr(self.backend, "dynamic_hw", False):
            raise EdgeError(f"{getattr(self.backend, 'path', 'model')}: this {getattr(self.backend, 'kind', '')} model has a fixed "
                            f"{self.input_hw[0]}x{self.input_hw[1]} input and cannot run at "
                            f"{input_hw[0]}x{input_hw[1]} (a TTA scale above 1 needs a dynamic-shape ONNX export, "
                            "export.dynamic_batch: true; or use scales <= 1)")
        out = []
        for start, stop in self._chunks(len(images)):
            t0 = time.perf_counter()
            boxed = [letterbox(img, input_hw) for img in images[start:stop]]
            padded = [b[0] for b in boxed]
            static = self.backend.batch
            if static and len(padded) < static:  # a static-batch model needs a full batch
                padded = padded + [padded[-1]] * (static - len(padded))
            blob = to_blob(padded)
            t1 = time.perf_counter()
            raw = self.backend.run(blob)
            t2 = time.perf_counter()
            per_image = decode(raw, self.conf, self.iou, self.max_det, self.agnostic)
            for (_, box), det in zip(boxed, per_image):
                xyxy = scale_boxes(det[:, :4], box)
                out.append(Detections(xyxy, det[:, 4], det[:, 5].astype(np.int64), box.orig_hw))
            t3 = time.perf_counter()
            self.timing["preprocess"] += t1 - t0
            self.timing["inference"] += t2 - t1
            self.timing["postprocess"] += t3 - t2
            self.timing["images"] += stop - start
        return out
