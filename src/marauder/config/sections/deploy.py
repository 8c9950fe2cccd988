"""Calibration, export, deployment, evaluation and the cloud service."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

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
    """`marauder export`: ONNX for every model, TensorRT engines where TensorRT is installed."""

    opset: int = Field(17, ge=11, description="ONNX opset")
    dynamic_batch: bool = Field(False, description="dynamic batch axis (static is fastest on the Jetson)")
    batch: int = Field(1, ge=1, description="batch size of a static export / largest of a dynamic one")
    simplify: bool = Field(True, description="run the ONNX simplifier (onnxslim)")
    imgsz: int | None = Field(None, description="null = the calibrated pipeline's, else general.imgsz")
    fp16: bool = Field(True, description="TensorRT FP16 engines")
    int8: bool = Field(False, description="TensorRT INT8 engines, calibrated on int8_calibration_images (default: the val split)")
    int8_calibration_images: str | None = Field(
        None, description="folder of representative images for INT8 calibration; null = the val split")
    int8_calibration_max: int = Field(300, ge=1, description="calibration images carried in the package")
    workspace_gb: float = Field(2.0, gt=0, description="TensorRT builder workspace")
    onnx_int8: bool = Field(False, description="also write an INT8 ONNX (onnxruntime) for the CPU/cloud path")
    map_tolerance: float = Field(0.01, ge=0, description="allowed |mAP50-95 change| vs PyTorch")
    recall_tolerance: float = Field(0.02, ge=0, description="allowed |per-class recall change| vs PyTorch")
    max_box_diff_px: float = Field(1.0, ge=0, description="allowed box difference on the check images")
    max_score_diff: float = Field(1e-3, ge=0, description="allowed score difference on the check images")
    check_images: int = Field(8, ge=1, description="fixed test images for the box/score check")


class DeploymentConfig(Section):
    """The vehicle: capture schedule, power model and energy budget (deployment_config.yaml)."""

    target_fps: float = Field(5.0, gt=0)
    capture_duration: float = Field(30.0, gt=0, description="seconds per capture")
    min_fps: float = Field(1.0, gt=0, description="the energy governor never goes below this; it stops")
    power_mode: str = Field("MAXN", description="nvpmodel mode the Jetson runs in")
    power_modes_watts: dict[str, float] = Field(default_factory=lambda: {"MAXN": 10.0, "5W": 5.0},
                                                description="board watts while inferring, per power mode")
    idle_watts: float = Field(2.0, ge=0, description="board watts while waiting for the next frame")
    energy_budget_wh: float = Field(0.05, gt=0, description="per capture")
    default_threshold: float = Field(0.25, ge=0, le=1, description="per-class threshold when not calibrated")
    tta: bool | None = Field(None, description="TTA on the device; null = as calibrated")

    @model_validator(mode="after")
    def _mode_known(self):
        if self.power_mode not in self.power_modes_watts:
            raise ValueError(f"power_mode '{self.power_mode}' is not in power_modes_watts "
                             f"{sorted(self.power_modes_watts)}")
        return self


class EvaluationConfig(Section):
    split: Literal["train", "val", "test"] = "test"
    conf: float = Field(0.001, ge=0, le=1)
    iou: float = Field(0.6, gt=0, le=1)
    batch: int = Field(16, gt=0)
    imgsz: int | None = None
    map_tolerance: float = Field(0.005, ge=0, description="allowed mAP50-95 drop vs --baseline")
    recall_tolerance: float = Field(0.02, ge=0, description="allowed critical-species recall drop")
    bootstrap: int = Field(1000, ge=0, description="resamples for the critical-recall 95% CI (0: none)")
    operating_conf: float = Field(0.25, ge=0, le=1, description="score threshold for P/R/F1 and confusion")
    ece_bins: int = Field(10, ge=2, description="equal-width score bins of the reliability curve")
    worst_examples: int = Field(8, ge=0, description="worst FN and FP crops of critical species in the report")


class ServeConfig(Section):
    """`marauder serve`: the cloud HTTP service over a deployment package (docs/SERVING.md)."""

    package: str | None = Field(None, description="package folder or .tar.gz; null = "
                                "checkpoints/tensorrt/nano_deployment")
    host: str = "0.0.0.0"
    port: int = Field(8080, ge=1, le=65535, description="the PORT environment variable wins (Cloud Run)")
    backend: Literal["auto", "onnx", "tensorrt"] = Field(
        "auto", description="auto: TensorRT engines when TensorRT is installed, else ONNX Runtime (CUDA, then CPU)")
    threads: int | None = Field(None, ge=1, description="ONNX Runtime intra-op threads; null = all cores")
    apply_thresholds: bool = Field(True, description="drop detections below their class's operating threshold")
    max_body_mb: float = Field(10.0, gt=0, description="larger request bodies get 413")
    max_pixels: int = Field(40_000_000, gt=0, description="larger decoded images get 413 (read from the header)")
    max_request_pixels: int = Field(64_000_000, gt=0, description="decoded pixels of all images in one request "
                                    "(read from the headers before decoding); more get 413")
    max_inflight_pixels: int = Field(100_000_000, gt=0, description="decoded pixels held by all requests in flight "
                                     "(up to 6 bytes each while decoding); a request that would pass it gets 503 with Retry-After")
    max_images_per_request: int = Field(16, ge=1, description="images in one /v1/detect/batch request")
    max_batch: int = Field(8, ge=1, description="images run through the model together")
    batch_window_ms: float = Field(5.0, ge=0, description="wait this long for more requests to batch")
    max_queue: int = Field(64, ge=1, description="images waiting for the model; more get 503")
    request_timeout_s: float = Field(30.0, gt=0, description="waiting for the model longer than this gets 504")
    header_timeout_s: float = Field(10.0, gt=0, description="a connection whose request headers are not complete "
                                    "this long after it opened (or after its first byte) is closed: slow clients")
    keep_alive_s: float = Field(5.0, gt=0, description="idle keep-alive connections close after this (uvicorn's "
                                "timeout_keep_alive)")
    max_connections: int | None = Field(256, ge=1, description="connections and requests in flight; past it new "
                                        "requests get 503 (uvicorn's limit_concurrency); null = no limit")
    api_keys_env: str = Field("MARAUDER_API_KEYS", description="env variable with comma-separated keys")
    api_keys_file: str | None = Field(None, description="secret file, one key per line ('sha256:<hex>' or raw)")
    require_api_key: bool = Field(True, description="false only behind another authenticating proxy")

    @model_validator(mode="after")
    def _pixel_budgets_nest(self):
        if not self.max_pixels <= self.max_request_pixels <= self.max_inflight_pixels:
            raise ValueError(f"pixel limits must nest: max_pixels ({self.max_pixels}) <= max_request_pixels "
                             f"({self.max_request_pixels}) <= max_inflight_pixels ({self.max_inflight_pixels})")
        return self
