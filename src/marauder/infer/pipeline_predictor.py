"""The calibrated pipeline of pipeline_config.yaml, over models of any kind (.pt, .onnx, .engine).

`PipelinePredictor("checkpoints/tta_calibration/pipeline_config.yaml")` reads what `marauder
calibrate` wrote and builds the numpy core's `Pipeline` (marauder.runtime.pipeline, the same one a
deployment package runs) over predictors loaded here. `predict` returns calibrated detections down
to `raw_confidence` (what mAP needs); the per-class operating thresholds are in `.thresholds`
(indexed by class id) for the evaluator, or applied by `predict` itself with `apply_thresholds=True`.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from ..errors import ConfigError, MarauderError
from ..runtime.pipeline import Pipeline
from ..runtime.spec import POOLED, PipelineSpec, calibrator_problem, fusion_options, threshold_array
from ..runtime.tta import views_from_config
from .pipeline_spec import load_pipeline_spec, resolve_relative


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


def build_pipeline(members, views, fusion, names, **options) -> Pipeline:
    """`Pipeline(...)` with its errors (class lists, weights) as one-line MarauderErrors."""
    try:
        return Pipeline(members, views, fusion_options(fusion), names, **options)
    except ValueError as exc:
        raise MarauderError(str(exc)) from None


def load_calibrators(spec: PipelineSpec, spec_path: Path) -> dict:
    """Class name -> calibrator, from the yaml's `calibration`, else from calibrator.pth."""
    if spec.calibration or not spec.calibrator:
        return dict(spec.calibration)  # checked with the rest of the file by load_pipeline_spec
    pth = resolve_relative(spec_path, spec.calibrator)
    if not pth.is_file():
        return {}
    from ..calibrate.fit import load_calibrator_file

    by_name = load_calibrator_file(pth)["calibration"]
    unknown = [n for n in by_name if n != POOLED and n not in spec.class_names]
    if unknown:
        raise ConfigError(f"calibration names unknown classes {unknown}; class_names are {spec.class_names}",
                          file=str(pth))
    for name, params in by_name.items():
        problem = calibrator_problem(params)
        if problem:
            raise ConfigError(f"calibration.{name}: {problem}", file=str(pth))
    return by_name


class PipelinePredictor(Pipeline):
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
        tta_cfg = self.spec.tta if tta is None else dict(self.spec.tta, enabled=tta)
        try:
            super().__init__(members, views_from_config(tta_cfg), fusion_options(self.spec.fusion), names,
                             calibration=load_calibrators(self.spec, self.path) if calibrate else None,
                             thresholds=threshold_array(self.spec.thresholds, self.spec.class_names,
                                                        self.spec.raw_confidence),
                             apply_thresholds=apply_thresholds)
        except ValueError as exc:
            raise ConfigError(str(exc), file=str(self.path)) from None
        if self.class_names != list(self.spec.class_names):
            raise ConfigError(f"class_names {list(self.spec.class_names)} differ from the models' "
                              f"{self.class_names}", file=str(self.path))
