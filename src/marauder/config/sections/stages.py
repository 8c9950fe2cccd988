"""Active learning, critical species, ensemble and multi-scale training."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .base import Section


class ActiveLearningConfig(Section):
    strategy: Literal["uncertainty_sampling", "least_confidence", "margin", "entropy", "random"] = (
        "uncertainty_sampling"
    )
    num_samples: int = Field(2000, gt=0)
    min_confidence: float = Field(0.3, ge=0, le=1)
    max_confidence: float = Field(0.7, ge=0, le=1)
    model: str = "checkpoints/baseline/best.pt"
    pool_dirs: list[str] = Field(
        default_factory=lambda: ["data/deepfish/images", "data/marauder/images"],
        description="folders of unlabelled images to score",
    )
    diversity: bool = Field(True, description="k-center greedy on backbone features among top candidates")
    candidate_factor: float = Field(3.0, ge=1, description="top num_samples*factor go to diversity")
    batch_size: int = Field(16, gt=0)
    imgsz: int | None = None
    category_aliases: dict[str, str] = Field(
        default_factory=dict, description="vendor category name -> our class name"
    )
    box_clip_tolerance: float = Field(0.02, ge=0, description="fraction of image size a box may overhang")

    @model_validator(mode="after")
    def _band(self):
        if self.min_confidence >= self.max_confidence:
            raise ValueError("min_confidence must be below max_confidence")
        return self


class OversamplingConfig(Section):
    enabled: bool = True
    critical_species_ratio: float = Field(3.0, ge=1)
    method: Literal["repeat", "class_weights"] = "repeat"


class HardNegativeMiningConfig(Section):
    enabled: bool = True
    iterations: int = Field(3, ge=1)
    epochs_per_iteration: int | None = Field(None, gt=0, description="null = baseline epochs / iterations")
    confidence: float = Field(0.25, ge=0, le=1, description="a prediction at or above this counts")
    review_confidence: float = Field(0.8, ge=0, le=1, description="above this, send for review instead")
    mode: Literal["images", "crops"] = "images"
    background_dirs: list[str] = Field(default_factory=list)
    max_negatives_per_iteration: int = Field(500, gt=0)


class CriticalSpeciesConfig(Section):
    species: list[str] = Field(
        default_factory=lambda: ["lionfish", "purple_sea_urchin", "abalone"],
        description="class names that must be found reliably",
    )
    base_model: str = "checkpoints/baseline/best.pt"
    oversampling: OversamplingConfig = Field(default_factory=OversamplingConfig)
    hard_negative_mining: HardNegativeMiningConfig = Field(default_factory=HardNegativeMiningConfig)
    min_recall: float = Field(0.70, ge=0, le=1)
    epochs: int | None = Field(None, gt=0, description="null = baseline_yolo.epochs")


class EnsembleVariant(Section):
    model_size: str = "yolov8n"
    confidence_threshold: float = Field(0.25, ge=0, le=1)
    epochs: int | None = Field(None, gt=0, description="null = ensemble.epochs")
    augmentation: dict[str, float] = Field(
        default_factory=dict, description="Ultralytics augmentation hyperparameters (hsv_h, mosaic, ...)"
    )
    init_from: str | None = Field(None, description="weights to start from; null = base_model")


class FusionConfig(Section):
    method: Literal["wbf", "nms", "soft_nms"] = "wbf"
    iou_threshold: float = Field(0.55, gt=0, le=1)
    skip_box_threshold: float = Field(0.001, ge=0, le=1)
    weights: list[float] | None = None
    conf_type: Literal["avg", "max", "box_and_model_avg", "absent_model_aware_avg"] = "avg"


class DeploymentBudget(Section):
    max_params_m: float = Field(5.0, gt=0, description="millions of parameters per model")
    max_gflops: float = Field(10.0, gt=0, description="GFLOPs per image at imgsz")
    imgsz: int = Field(640, ge=32)


def _default_variants() -> dict[str, EnsembleVariant]:
    return {
        "high_recall": EnsembleVariant(
            confidence_threshold=0.15,
            augmentation={"hsv_h": 0.03, "hsv_s": 0.9, "hsv_v": 0.6, "degrees": 15.0, "translate": 0.2,
                          "scale": 0.7, "fliplr": 0.5, "flipud": 0.2, "mosaic": 1.0, "mixup": 0.2},
        ),
        "balanced": EnsembleVariant(
            confidence_threshold=0.25,
            augmentation={"hsv_h": 0.015, "hsv_s": 0.7, "hsv_v": 0.4, "translate": 0.1, "scale": 0.5,
                          "fliplr": 0.5, "mosaic": 1.0},
        ),
        "high_precision": EnsembleVariant(
            confidence_threshold=0.4,
            augmentation={"hsv_h": 0.005, "hsv_s": 0.3, "hsv_v": 0.2, "translate": 0.05, "scale": 0.2,
                          "fliplr": 0.5, "mosaic": 0.5},
        ),
    }


class EnsembleConfig(Section):
    base_model: str = Field(
        "checkpoints/critical_species/best.pt",
        description="weights the variants start from (falls back to the baseline when absent)",
    )
    epochs: int = Field(100, gt=0)
    batch_size: int | Literal["auto"] = 16
    variants: dict[str, EnsembleVariant] = Field(default_factory=_default_variants)
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    budget: DeploymentBudget = Field(default_factory=DeploymentBudget)


class MultiscaleTrainingConfig(Section):
    resolutions: list[int] = Field(default_factory=lambda: [480, 512, 576, 640, 704, 768], min_length=1)
    scale_variance: float = Field(0.5, ge=0, le=1)
    epochs: int = Field(100, gt=0)
    models: list[str] = Field(default_factory=list, description="null/empty = the ensemble variants")
    batch_size: int = Field(16, gt=0)
