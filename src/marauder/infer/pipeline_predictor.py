"""The calibrated pipeline behind one `Predictor`: models -> TTA views -> fusion -> calibration.

`PipelinePredictor("checkpoints/tta_calibration/pipeline_config.yaml")` reads what `marauder
calibrate` wrote. `predict` returns calibrated detections down to `raw_confidence` (what mAP needs);
the per-class operating thresholds are in `.thresholds` (indexed by class id) for the evaluator,
or applied by `predict` itself with `apply_thresholds=True`.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigError, MarauderError
from ..runtime.calibration import apply_calibrator, apply_per_class
from ..types import Detections
from .fusion import fuse
from .pipeline_spec import PipelineSpec, load_pipeline_spec, resolve_relative
from .tta import View, predict_views, views_from_config

POOLED = "__pooled__"


def load_member(path: str | Path, **options):
    """`load_predictor`, passing only the options this model kind's factory accepts."""
    from . import predictor as _predictor

    path = Path(path)
    if not path.exists():
        raise MarauderError("model file not found", file=str(path))
    target = _predictor._FACTORIES.get(path.suffix.lower())
    if target is None:
        return _predictor.load_predictor(path)  # let it raise its own clear error
    module_name, attr = target.split(":")
    factory = getattr(importlib.import_module(module_name), attr)
    params = inspect.signature(factory).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        options = {k: v for k, v in options.items() if k in params}
    return factory(path, **options)


def check_same_classes(predictors: Sequence, names: Sequence[str]) -> list[str]:
    """The shared class list, or a clear error naming the two models that disagree."""
    first = list(predictors[0].class_names)
    for member, name in zip(predictors[1:], names[1:]):
        if list(member.class_names) != first:
            raise MarauderError(
                f"models have different class lists: {names[0]} has {first}, {name} has "
                f"{list(member.class_names)}; every model of a pipeline must share one class list"
            )
    return first


class TTAEnsemble:
    """Models x views, predicted in one batch per model, fused per image with `fuse`.

    `predict_raw` keeps every (model, view) result so a caller can fuse several ways (with and
    without TTA) from one forward pass.
    """

    def __init__(
        self, members: Sequence, views: Sequence[View], fusion: dict, names: Sequence[str] | None = None
    ):
        self.members = list(members)
        self.views = list(views) or [View()]
        self.names = list(names) if names else [f"model{i}" for i in range(len(self.members))]
        self.class_names = check_same_classes(self.members, self.names)
        self.fusion = dict(fusion)

    def predict_raw(self, images: list[np.ndarray]) -> list[list[list[Detections]]]:
        """`out[image][model][view]`, boxes already mapped back to each original image."""
        per_model = [predict_views(m, images, self.views) for m in self.members]
        return [[per_model[m][i] for m in range(len(self.members))] for i in range(len(images))]

    def fuse_raw(
        self,
        raw: list[list[list[Detections]]],
        views: Sequence[int] | None = None,
        models: Sequence[int] | None = None,
    ) -> list[Detections]:
        """Fuse chosen models and views of each image (default: all of them)."""
        views = list(range(len(self.views))) if views is None else list(views)
        models = list(range(len(self.members))) if models is None else list(models)
        base = self.fusion.get("weights")
        opts = {k: v for k, v in self.fusion.items() if k != "weights"}
        weights = None if base is None else [float(base[m]) for m in models for _ in views]
        return [
            fuse([per_image[m][v] for m in models for v in views], weights=weights, **opts)
            for per_image in raw
        ]

    def predict(self, images: list[np.ndarray]) -> list[Detections]:
        return self.fuse_raw(self.predict_raw(images))


def fusion_kwargs(fusion_cfg) -> dict:
    d = fusion_cfg.model_dump() if hasattr(fusion_cfg, "model_dump") else dict(fusion_cfg)
    return {
        k: d[k] for k in ("method", "iou_threshold", "skip_box_threshold", "weights", "conf_type") if k in d
    }


def load_calibrators(spec: PipelineSpec, spec_path: Path) -> tuple[dict[int, dict], dict | None]:
    """Per-class calibrators from the yaml's `calibration`, else from calibrator.pth."""
    by_name = dict(spec.calibration)
    if not by_name and spec.calibrator:
        pth = resolve_relative(spec_path, spec.calibrator)
        if pth.is_file():
            from .calibration import load_calibrator_file

            by_name = load_calibrator_file(pth)["calibration"]
    index = {n: i for i, n in enumerate(spec.class_names)}
    unknown = [n for n in by_name if n != POOLED and n not in index]
    if unknown:
        raise ConfigError(
            f"calibration names unknown classes {unknown}; class_names are {spec.class_names}",
            file=str(spec_path),
        )
    for name, params in by_name.items():  # a bad hand edit fails here, naming the class, not mid-prediction
        try:
            apply_calibrator(np.array([0.1, 0.5, 0.9]), params)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"calibration.{name}: invalid calibrator {params} ({type(exc).__name__}: {exc})",
                              file=str(spec_path)) from None
    per_class = {index[n]: p for n, p in by_name.items() if n != POOLED}
    return per_class, by_name.get(POOLED)


class PipelinePredictor:
    """`predict(images) -> list[Detections]` through the whole calibrated pipeline.

    Args:
        path: pipeline_config.yaml.
        tta: override the file's TTA switch (False: models and fusion only).
        calibrate: False returns the fused raw scores.
        apply_thresholds: drop detections below their class's threshold.
        device, batch: passed to the models.
        conf, iou, imgsz: accepted so any evaluator can pass its usual options; the pipeline's own
            `raw_confidence`, fusion IoU and `imgsz` apply, because the calibrators were fitted for them.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        tta: bool | None = None,
        calibrate: bool = True,
        apply_thresholds: bool = False,
        device: str | None = None,
        batch: int = 16,
        conf: float | None = None,
        iou: float | None = None,
        imgsz: int | None = None,
    ):
        del conf, iou, imgsz  # see Args: the file's values win
        self.path = Path(path)
        self.spec = load_pipeline_spec(self.path)
        members, names = [], []
        for entry in self.spec.models:
            model_path = resolve_relative(self.path, entry.path)
            if not model_path.exists():
                raise MarauderError(f"model '{entry.name}' not found at {model_path}", file=str(self.path))
            members.append(
                load_member(
                    model_path,
                    imgsz=self.spec.imgsz,
                    conf=max(entry.confidence_threshold, self.spec.raw_confidence),
                    device=device,
                    batch=batch,
                )
            )
            names.append(entry.name)
        weights = self.spec.fusion.weights
        if weights is not None and len(weights) != len(members):
            raise ConfigError(
                f"fusion.weights has {len(weights)} entries for {len(members)} models", file=str(self.path)
            )
        tta_cfg = self.spec.tta if tta is None else self.spec.tta.model_copy(update={"enabled": tta})
        self.ensemble = TTAEnsemble(
            members, views_from_config(tta_cfg), fusion_kwargs(self.spec.fusion), names
        )
        self.class_names = list(self.spec.class_names)
        if self.ensemble.class_names != self.class_names:
            raise ConfigError(
                f"class_names {self.class_names} differ from the models' {self.ensemble.class_names}",
                file=str(self.path),
            )
        self.per_class, self.pooled = load_calibrators(self.spec, self.path) if calibrate else ({}, None)
        self.calibrate = calibrate
        unknown = [n for n in self.spec.thresholds if n not in self.class_names]
        if unknown:
            raise ConfigError(f"thresholds name unknown classes {unknown}", file=str(self.path))
        # class id -> threshold; a class without one keeps everything down to raw_confidence
        self.thresholds = np.array(
            [self.spec.thresholds.get(n, self.spec.raw_confidence) for n in self.class_names],
            dtype=np.float32,
        )
        self.apply_thresholds = apply_thresholds

    @property
    def views(self) -> list[View]:
        return self.ensemble.views

    def calibrate_detections(self, dets: Detections) -> Detections:
        if not self.calibrate or (not self.per_class and self.pooled is None):
            return dets
        return dets.with_scores(
            apply_per_class(dets.scores, dets.class_ids, self.per_class, self.pooled)
        ).sorted()

    def predict(self, images: list[np.ndarray]) -> list[Detections]:
        out = [self.calibrate_detections(d) for d in self.ensemble.predict(images)]
        if self.apply_thresholds:
            out = [d.filter(self.thresholds) for d in out]
        return out
