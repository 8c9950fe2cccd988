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
        self.stride = int(max(getattr(self.model.model, "stride", [32])))

    def predict(self, images: list[np.ndarray], imgsz=None) -> list[Detections]:
        """`imgsz` (int or (h, w)): run at this input size instead of the predictor's own."""
        out: list[Detections] = []
        for start in range(0, len(images), self.batch):
            chunk = images[start:start + self.batch]
            # rect=False: a square letterbox, as every exported (static-shape) model runs, so a .pt and its
            # ONNX export see the same pixels; Ultralytics' minimal-padding default shifts recall by a few %
            results = self.model.predict(
                chunk, imgsz=list(imgsz) if imgsz is not None else self.imgsz, conf=self.conf, iou=self.iou,
                device=self.device, max_det=self.max_det, verbose=False, batch=len(chunk), rect=False,
            )
            out.extend(results_to_detections(r) for r in results)
        return out

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        """Pooled backbone features (N, D) for diversity sampling."""
        feats = self.model.embed(images, imgsz=self.imgsz, device=self.device, verbose=False)
        return np.stack([f.cpu().numpy().reshape(-1) for f in feats])


def _detailed_predictor_class():
    """A DetectionPredictor that also returns per-box class scores and a pooled backbone feature.

    Both come from the same forward pass as the boxes (NMS keep-indices into the raw head output,
    and a forward hook on the last backbone layer), so active learning pays no second inference.
    """
    from ultralytics.models.yolo.detect import DetectionPredictor
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils import nms, ops

    class DetailedPredictor(DetectionPredictor):
        def inference(self, im, *args, **kwargs):
            # AutoBackend keeps the torch model on its backend (8.4) or directly (older releases)
            found = [getattr(getattr(self.model, "backend", None), "model", None), getattr(self.model, "model", None)]
            net = next((m for m in found if isinstance(m, DetectionModel)), None)
            self._pooled = None
            if net is None:
                return super().inference(im, *args, **kwargs)
            layer = net.model[max(len(net.yaml.get("backbone", [])) - 1, 0)]

            def hook(_module, _inputs, output):
                self._pooled = output.float().mean(dim=(2, 3)).cpu().numpy()

            handle = layer.register_forward_hook(hook)
            try:
                return super().inference(im, *args, **kwargs)
            finally:
                handle.remove()

        def postprocess(self, preds, img, orig_imgs, **kwargs):
            raw = preds[0] if isinstance(preds, list | tuple) else preds
            nc = len(self.model.names)
            kept, keep_idx = nms.non_max_suppression(
                raw, self.args.conf, kwargs.pop("iou", self.args.iou), self.args.classes, self.args.agnostic_nms,
                max_det=self.args.max_det, end2end=getattr(self.model, "end2end", False), return_idxs=True,
            )
            if not isinstance(orig_imgs, list):
                orig_imgs = ops.convert_torch2numpy_batch(orig_imgs)[..., ::-1]
            results = self.construct_results(kept, img, orig_imgs, **kwargs)
            for i, (r, idx) in enumerate(zip(results, keep_idx)):
                if raw.shape[1] == 4 + nc and len(idx):  # (B, 4+nc, anchors): per-class scores exist
                    r.class_scores = raw[i, 4:4 + nc, idx.long()].T.float().cpu().numpy()
                else:
                    r.class_scores = None
                r.embedding = None if self._pooled is None else self._pooled[i]
            return results

    return DetailedPredictor


def predict_detailed(predictor: UltralyticsPredictor, images: list[np.ndarray]) -> list[Detections]:
    """Like `predictor.predict`, with extra['class_scores'] (N, nc) and extra['embedding'] (D,) per image."""
    cls = getattr(predictor, "_detailed_cls", None) or _detailed_predictor_class()
    predictor._detailed_cls = cls
    out: list[Detections] = []
    for start in range(0, len(images), predictor.batch):
        chunk = images[start:start + predictor.batch]
        results = predictor.model.predict(
            chunk, imgsz=predictor.imgsz, conf=predictor.conf, iou=predictor.iou, device=predictor.device,
            max_det=predictor.max_det, verbose=False, batch=len(chunk), predictor=cls, rect=False,
        )
        for r in results:
            det = results_to_detections(r)
            det.extra["class_scores"] = getattr(r, "class_scores", None)
            det.extra["embedding"] = getattr(r, "embedding", None)
            out.append(det)
    return out
