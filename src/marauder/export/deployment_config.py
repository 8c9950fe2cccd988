"""Build deployment_config.yaml: everything the edge runtime needs, in plain YAML types.

Thresholds, calibration, TTA and fusion come from the calibrated pipeline
(checkpoints/tta_calibration/pipeline_config.yaml) when it exists, so the Jetson runs what
`marauder calibrate` chose; otherwise from the ensemble config with an uncalibrated default threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config.sections.deploy import DeploymentConfig, ExportConfig
from ..errors import ConfigError
from ..log import get_logger
from ..runtime.spec import ModelSpec, PipelineSpec

log = get_logger("export")


@dataclass
class PipelineChoices:
    """What the calibrated pipeline (or the ensemble config, without one) decided."""

    confidence: dict[str, float]  # model name -> threshold before fusion
    fusion: dict
    tta: dict
    raw_confidence: float
    calibration: dict[str, dict] = field(default_factory=dict)  # class name -> calibrator dict
    thresholds: dict[str, float] = field(default_factory=dict)  # class name -> operating threshold
    critical_species: list[str] = field(default_factory=list)
    imgsz: int | None = None
    source: str | None = None


def choices_from_pipeline(spec_path: Path, names: list[str]) -> PipelineChoices:
    """Read pipeline_config.yaml (and its calibrator file) into plain dicts keyed by class name."""
    from ..infer.pipeline_predictor import load_calibrators
    from ..infer.pipeline_spec import load_pipeline_spec

    spec = load_pipeline_spec(spec_path)
    calibration = load_calibrators(spec, spec_path)
    by_name = {m.name: m.confidence_threshold for m in spec.models}
    missing = [n for n in names if n not in by_name]
    if missing:
        log.warning("%s has no entry for models %s; they keep the raw confidence %.3f before fusion",
                    spec_path, missing, spec.raw_confidence)
    return PipelineChoices(
        confidence={n: float(by_name.get(n, spec.raw_confidence)) for n in names},
        fusion=dict(spec.fusion), tta=dict(spec.tta), raw_confidence=spec.raw_confidence,
        calibration=calibration, thresholds=dict(spec.thresholds),
        critical_species=list(spec.critical_species), imgsz=spec.imgsz, source=str(spec_path),
    )


def choices_from_config(names: list[str], variant_thresholds: dict[str, float], fusion: dict,
                        raw_confidence: float, class_names: list[str], default_threshold: float,
                        critical_species: list[str]) -> PipelineChoices:
    return PipelineChoices(
        confidence={n: float(variant_thresholds.get(n, raw_confidence)) for n in names},
        fusion=dict(fusion), tta={"enabled": False}, raw_confidence=raw_confidence,
        thresholds={c: float(default_threshold) for c in class_names},
        critical_species=[c for c in critical_species if c in class_names],
    )


def build_deployment_config(*, class_names: list[str], imgsz: int, models: list[dict],
                            choices: PipelineChoices, export_cfg: ExportConfig,
                            deploy_cfg: DeploymentConfig, nms_iou: float, check_images: list[str],
                            int8_calibration_dir: str | None = None) -> dict:
    """The mapping written as deployment_config.yaml: a `PipelineSpec` (checked as the vehicle will check
    it) in plain YAML types. `models`: name, onnx, engine, architecture, input_hw, batch, onnx_sha256."""
    tta = dict(choices.tta)
    if deploy_cfg.tta is not None:
        tta["enabled"] = bool(deploy_cfg.tta)
    upscales = [s for s in tta.get("scales", []) if float(s) > 1] if tta.get("enabled") else []
    if upscales:
        # a view above 1x needs a larger model input; TensorRT engines and static exports have one size
        raise ConfigError(f"TTA scales {upscales} run the model above its {imgsz}px input, which an exported "
                          "model cannot: calibrate with tta_calibration.tta.scales <= 1, or deploy without TTA "
                          f"(deployment.tta: false); from {choices.source or 'the pipeline config'}")
    spec = PipelineSpec(
        class_names=list(class_names),
        imgsz=int(imgsz),
        models=[ModelSpec(**m, confidence_threshold=choices.confidence[m["name"]]) for m in models],
        raw_confidence=float(choices.raw_confidence),
        nms_iou=float(nms_iou),
        max_det=300,
        tta=tta,
        fusion=dict(choices.fusion),
        calibration=choices.calibration,
        thresholds={c: float(t) for c, t in choices.thresholds.items()},
        critical_species=list(choices.critical_species),
        capture={"target_fps": deploy_cfg.target_fps, "capture_duration": deploy_cfg.capture_duration,
                 "min_fps": deploy_cfg.min_fps},
        energy={"power_mode": deploy_cfg.power_mode, "power_modes_watts": dict(deploy_cfg.power_modes_watts),
                "idle_watts": deploy_cfg.idle_watts, "energy_budget_wh": deploy_cfg.energy_budget_wh},
        export={"opset": export_cfg.opset, "dynamic_batch": export_cfg.dynamic_batch,
                "batch": export_cfg.batch, "fp16": export_cfg.fp16, "int8": export_cfg.int8,
                "workspace_gb": export_cfg.workspace_gb, "int8_calibration_dir": int8_calibration_dir},
        check_images=list(check_images),
        pipeline_config=choices.source,
    )
    return spec.to_mapping(package=True)
