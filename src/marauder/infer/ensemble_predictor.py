"""Several predictors behind one: each member predicts, its own threshold applies, then fusion.

Members can be any `Predictor` (.pt, .onnx, TensorRT, pipelines), so the same ensemble runs on
the training machine and on exported engines. `EnsemblePredictor` is itself a `Predictor`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..runtime.fusion import fuse
from ..runtime.spec import FUSION_KEYS, fusion_options
from ..types import Detections
from .predictor import Predictor, load_predictor


class EnsemblePredictor:
    """`predict(images) -> list[Detections]`: members' detections fused image by image.

    Args:
        predictors: the members (objects with `class_names` and `predict`).
        conf_thresholds: one per member (a float, or one per class id); applied before fusion.
        fusion_cfg: a `FusionConfig` or a mapping of `fuse` keywords (method, iou_threshold,
            skip_box_threshold, weights, conf_type); None = WBF defaults.
        names: optional member names (for reports).
    """

    def __init__(self, predictors: Sequence[Predictor], conf_thresholds: Sequence[float] | None = None,
                 fusion_cfg=None, names: Sequence[str] | None = None):
        self.members = list(predictors)
        if not self.members:
            raise ValueError("EnsemblePredictor: at least one member is needed")
        self.class_names = list(self.members[0].class_names)
        for i, member in enumerate(self.members[1:], start=1):
            if list(member.class_names) != self.class_names:
                raise ValueError(
                    f"EnsemblePredictor: member {i} has classes {list(member.class_names)}, "
                    f"member 0 has {self.class_names}; members must share one class list"
                )
        if conf_thresholds is not None and len(conf_thresholds) != len(self.members):
            raise ValueError(f"EnsemblePredictor: {len(conf_thresholds)} thresholds for "
                             f"{len(self.members)} members")
        self.conf_thresholds = list(conf_thresholds) if conf_thresholds is not None else None
        self.fusion = _fusion_kwargs(fusion_cfg)
        self.names = list(names) if names is not None else [f"member{i}" for i in range(len(self.members))]
        self.name = "ensemble"  # label in evaluation reports

    def predict_members(self, images: list[np.ndarray]) -> list[list[Detections]]:
        """Each member's raw detections: `[member][image]`."""
        return [member.predict(images) for member in self.members]

    def fuse_members(self, per_member: list[list[Detections]]) -> list[Detections]:
        n = len(per_member[0]) if per_member else 0
        return [
            fuse([dets[i] for dets in per_member], conf_thresholds=self.conf_thresholds, **self.fusion)
            for i in range(n)
        ]

    def predict(self, images: list[np.ndarray]) -> list[Detections]:
        return self.fuse_members(self.predict_members(images))


def _fusion_kwargs(fusion_cfg) -> dict:
    """`fusion_options`, refusing what is neither a FusionConfig nor a mapping of its keys."""
    if fusion_cfg is None:
        return {}
    if not hasattr(fusion_cfg, "model_dump"):
        if not isinstance(fusion_cfg, Mapping):
            raise TypeError(f"fusion_cfg must be a FusionConfig or a mapping, got {type(fusion_cfg).__name__}")
        unknown = set(fusion_cfg) - set(FUSION_KEYS)
        if unknown:
            raise ValueError(f"fusion_cfg: unknown keys {sorted(unknown)}; expected some of {sorted(FUSION_KEYS)}")
    return fusion_options(fusion_cfg)


def load_ensemble(weights: Sequence[str | Path], conf_thresholds: Sequence[float] | None = None,
                  fusion_cfg=None, names: Sequence[str] | None = None, **predictor_options) -> EnsemblePredictor:
    """An ensemble over model files of any kind `load_predictor` reads (.pt, .onnx, .engine, ...).

    Members predict at a low confidence (`predictor_options`, e.g. conf=0.001) so that the
    per-member thresholds given here decide what enters fusion.
    """
    members = [load_predictor(w, **predictor_options) for w in weights]
    return EnsemblePredictor(members, conf_thresholds, fusion_cfg,
                             names=names or [Path(w).parent.name or Path(w).stem for w in weights])
