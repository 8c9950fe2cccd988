"""Calibration, export, deployment, evaluation and the cloud service."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Section
from .stages import FusionConfig


class TTAConfig(Section):
    enabled: bool = True
    hflip: bool = True
    vflip: bool = False
    rotations: list[Literal[90, 180, 270]] = Field(default_factory=list)
    scales: list[float] = Field(default_factory=lambda: [1.0])


class CalibrationConfig(Section):
    methods: list[Literal["temperature", "platt", "isotonic"]] = Field(
        default_factory=lambda: ["temperature", "platt", "isotonic"]
    )
    folds: int = Field(5, ge=2)
    min_samples_per_class: int = Field(30, ge=1)
    iou_threshold: float = Field(0.5, gt=0, le=1)


class ThresholdConfig(Section):
    objective: Literal["f1", "fbeta", "recall"] = "f1"
    beta: float = Field(1.0, gt=0)
    critical_recall: float | None = Field(0.7, ge=0, le=1, description="recall target for critical species")
    bootstrap: int = Field(500, ge=0)


class TTACalibrationConfig(Section):
    tta: TTAConfig = Field(default_factory=TTAConfig)
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    thresholds: ThresholdConfig = Field(default_factory=ThresholdConfig)
    imgsz: int | None = None
    raw_confidence: float = Field(0.01, ge=0, le=1, description="model threshold before fusion")


class ExportConfig(Section):
    opset: int = Field(17, ge=11)
    dynamic_batch: bool = False
    batch: int = Field(1, ge=1)
    simplify: bool = True
    imgsz: int | None = None
    fp16: bool = True
    int8: bool = False
    int8_calibration_images: str | None = None
    workspace_gb: float = Field(2.0, gt=0)
    map_tolerance: float = Field(0.01, ge=0, description="allowed mAP50-95 drop vs PyTorch")
    recall_tolerance: float = Field(0.02, ge=0)
    max_box_diff_px: float = Field(1.0, ge=0)
    max_score_diff: float = Field(1e-3, ge=0)


class DeploymentConfig(Section):
    target_fps: float = Field(5.0, gt=0)
    capture_duration: float = Field(30.0, gt=0, description="seconds per capture")
    power_mode: str = "MAXN"
    power_modes_watts: dict[str, float] = Field(default_factory=lambda: {"MAXN": 10.0, "5W": 5.0})
    idle_watts: float = Field(2.0, ge=0)
    energy_budget_wh: float = Field(0.05, gt=0, description="per capture")
    min_fps: float = Field(1.0, gt=0)


class EvaluationConfig(Section):
    split: Literal["train", "val", "test"] = "test"
    conf: float = Field(0.001, ge=0, le=1)
    iou: float = Field(0.6, gt=0, le=1)
    batch: int = Field(16, gt=0)
    imgsz: int | None = None
    map_tolerance: float = Field(0.005, ge=0, description="allowed mAP50-95 drop vs --baseline")
    recall_tolerance: float = Field(0.02, ge=0, description="allowed critical-species recall drop")
    bootstrap: int = Field(1000, ge=0)
    operating_conf: float = Field(0.25, ge=0, le=1)


class ServeConfig(Section):
    host: str = "0.0.0.0"
    port: int = Field(8080, ge=1, le=65535)
    max_body_mb: float = Field(10.0, gt=0)
    max_pixels: int = Field(40_000_000, gt=0)
    max_batch: int = Field(8, ge=1)
    batch_window_ms: float = Field(5.0, ge=0)
    api_keys_file: str | None = None
    require_api_key: bool = True
