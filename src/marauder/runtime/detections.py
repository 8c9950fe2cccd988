"""Detections of one image: the one detection type of every model, backend and pipeline.

What any model (PyTorch, ONNX, TensorRT, an ensemble, a calibrated pipeline) produces for one image,
so TTA, fusion, calibration, evaluation, the HTTP service and the edge runtime share one code path.
Boxes are absolute pixel xyxy in the original image. numpy only: the edge runtime ships this file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Detections:
    xyxy: np.ndarray  # (N, 4) float32, pixels in the original image
    scores: np.ndarray  # (N,) float32
    class_ids: np.ndarray  # (N,) int64
    image_size: tuple[int, int] = (0, 0)  # (height, width) of the original image
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        class_ids = np.asarray(self.class_ids, dtype=np.int64).reshape(-1)
        if not (len(xyxy) == len(scores) == len(class_ids)):
            raise ValueError(
                f"Detections: {len(xyxy)} boxes, {len(scores)} scores, {len(class_ids)} class ids"
            )
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "class_ids", class_ids)
        object.__setattr__(self, "image_size", (int(self.image_size[0]), int(self.image_size[1])))

    @classmethod
    def empty(cls, image_size: tuple[int, int] = (0, 0)) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0), image_size)

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index) -> Detections:
        """Select by boolean mask, index array or slice."""
        return Detections(
            self.xyxy[index], self.scores[index], self.class_ids[index], self.image_size, dict(self.extra)
        )

    def filter(self, min_score: float | np.ndarray = 0.0) -> Detections:
        """Keep detections at or above a threshold: one float, or one per class id."""
        if np.ndim(min_score) == 0:
            return self[self.scores >= float(min_score)]
        per_class = np.asarray(min_score, dtype=np.float32)
        return self[self.scores >= per_class[self.class_ids]]

    def sorted(self) -> Detections:
        return self[np.argsort(-self.scores, kind="stable")]

    def with_scores(self, scores: np.ndarray) -> Detections:
        return Detections(self.xyxy, scores, self.class_ids, self.image_size, dict(self.extra))

    @property
    def areas(self) -> np.ndarray:
        wh = np.clip(self.xyxy[:, 2:] - self.xyxy[:, :2], 0, None)
        return wh[:, 0] * wh[:, 1]

    def normalized_xyxy(self) -> np.ndarray:
        """Boxes divided by image width/height (what WBF and YOLO labels expect)."""
        h, w = self.image_size
        if h <= 0 or w <= 0:
            raise ValueError("Detections.image_size is unknown; cannot normalise boxes")
        return self.xyxy / np.array([w, h, w, h], dtype=np.float32)

    @classmethod
    def concat(cls, items: list[Detections]) -> Detections:
        if not items:
            return cls.empty()
        return cls(
            np.concatenate([d.xyxy for d in items]),
            np.concatenate([d.scores for d in items]),
            np.concatenate([d.class_ids for d in items]),
            items[0].image_size,
        )

    def to_records(self, class_names: list[str] | None = None) -> list[dict]:
        """JSON-friendly list of dicts (used by reports, the runtime and the HTTP service)."""
        out = []
        for box, score, cid in zip(self.xyxy.tolist(), self.scores.tolist(), self.class_ids.tolist()):
            rec = {"class_id": int(cid), "score": round(float(score), 6), "box": [round(v, 2) for v in box]}
            if class_names is not None:
                rec["class_name"] = class_names[cid] if 0 <= cid < len(class_names) else str(cid)
            out.append(rec)
        return out
