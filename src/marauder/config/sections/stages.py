"""Active learning, critical species, ensemble and multi-scale training."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .base import Section


class ActiveLearningConfig(Section):
    strategy: Literal["uncertainty_sampling", "least_confidence", "margin", "entropy", "random"] = Field(
        "uncertainty_sampling",
        description="uncertainty_sampling: detections with confidence in [min_confidence, max_confidence]; "
                    "least_confidence / margin / entropy: per-box class uncertainty; random: a baseline",
    )
    num_samples: int = Field(2000, gt=0)
    min_confidence: float = Field(0.3, ge=0, le=1)
    max_confidence: float = Field(0.7, ge=0, le=1)
    model: str = "checkpoints/baseline/best.pt"
    pool_dirs: list[str] = Field(
        default_factory=lambda: ["data/deepfish/images", "data/marauder/images"],
        description="folders of unlabelled images to score (plus data.extra_unlabelled_dirs)",
    )
    diversity: bool = Field(True, description="k-center greedy on backbone features among top candidates")
    candidate_factor: float = Field(3.0, ge=1, description="top num_samples*factor go to diversity")
    zero_detection_share: float = Field(
        0.1, ge=0, le=1, description="share of num_samples kept for frames with no detection at all (picked at "
                                     "random, seeded): uncertainty scores are 0 there, yet that is where the "
                                     "model misses animals")
    batch_size: int = Field(16, gt=0)
    imgsz: int | None = Field(None, description="null = general.imgsz")
    seed: int = Field(0, description="seed of the random strategy")
    pre_annotation_confidence: float = Field(
        0.25, ge=0, le=1, description="model boxes at or above this go into the package as pre-annotations"
    )
    thumbnail_size: int = Field(256, ge=32, description="longest side of package thumbnails, pixels")
    category_aliases: dict[str, str] = Field(
        default_factory=dict, description="vendor category name -> our class name"
    )
    box_clip_tolerance: float = Field(0.02, ge=0, description="fraction of image size a box may overhang")
    duplicate_iou: float = Field(0.95, gt=0, le=1, description="same-class boxes above this IoU are duplicates")
    match_iou: float = Field(0.3, gt=0, le=1, description="QA diff: vendor and model box are the same object")
    moved_iou: float = Field(0.9, gt=0, le=1, description="QA diff: a matched box below this IoU was moved")
    max_import_mb: float = Field(4096.0, gt=0, description="total uncompressed size a returned zip may hold")
    max_import_files: int = Field(200_000, gt=0, description="entries a returned zip may hold")
    max_json_mb: float = Field(256.0, gt=0, description="largest annotations.json accepted")

    @model_validator(mode="after")
    def _band(self):
        if self.min_confidence >= self.max_confidence:
            raise ValueError("min_confidence must be below max_confidence")
        if self.match_iou > self.moved_iou:
            raise ValueError("match_iou must not exceed moved_iou")
        return self


class OversamplingConfig(Section):
    enabled: bool = True
    critical_species_ratio: float = Field(3.0, ge=1, description="each train image with a critical species "
                                          "appears this often in the training list (fractions exact, seeded)")
    method: Literal["repeat", "class_weights"] = Field(
        "repeat", description="repeat: oversample images in the training list; class_weights: Ultralytics' "
                              "inverse-frequency class weights in the loss (cls_pw), no repeats")
    class_weight_power: float = Field(1.0, gt=0, le=1, description="method class_weights: Ultralytics' cls_pw "
                                      "(1: full inverse class frequency, smaller dampens)")


class HardNegativeMiningConfig(Section):
    enabled: bool = True
    iterations: int = Field(3, ge=1, description="train -> mine rounds; the last one only trains")
    epochs_per_iteration: int | None = Field(None, gt=0, description="null = critical epochs / iterations")
    confidence: float = Field(0.25, ge=0, le=1, description="a prediction at or above this counts")
    review_confidence: float = Field(0.8, ge=0, le=1, description="above this, send for review instead")
    match_iou: float = Field(0.5, gt=0, le=1, description="a same-class GT box at this IoU makes it a true positive")
    classes: Literal["critical", "all"] = Field("critical", description="whose false positives are mined")
    mode: Literal["images", "crops"] = "images"
    crop_context: float = Field(0.5, ge=0, description="mode crops: context around the box, x its size per side")
    background_dirs: list[str] = Field(default_factory=list, description="folders of images with no animals")
    max_negatives_per_iteration: int = Field(500, gt=0)

    @model_validator(mode="after")
    def _review_above(self):
        if self.review_confidence < self.confidence:
            raise ValueError("review_confidence must not be below confidence")
        return self


class CriticalSpeciesConfig(Section):
    species: list[str] = Field(
        default_factory=lambda: ["lionfish", "purple_sea_urchin", "abalone"],
        description="class names that must be found reliably",
    )
    base_model: str = Field("checkpoints/baseline/best.pt", description="weights to start from (or a model "
                            "name / .yaml to start from scratch)")
    data: str = "data/organized/dataset.yaml"
    oversampling: OversamplingConfig = Field(default_factory=OversamplingConfig)
    hard_negative_mining: HardNegativeMiningConfig = Field(default_factory=HardNegativeMiningConfig)
    min_recall: float = Field(0.70, ge=0, le=1, description="recall gate per critical species on val")
    operating_confidence: float = Field(0.25, ge=0, le=1, description="threshold the gate's recall is taken at")
    gate: Literal["point", "lower_bound"] = Field(
        "point", description="what must reach min_recall: the val recall itself (point), or the lower end of "
                             "its 95% bootstrap interval over val images (lower_bound: strict, for small val sets)")
    epochs: int | None = Field(None, gt=0, description="null = baseline_yolo.epochs")
    imgsz: int | None = Field(None, description="null = general.imgsz")
    batch_size: int = Field(16, gt=0)
    train_args: dict = Field(default_factory=dict, description="extra Ultralytics training arguments for every "
                             "iteration, e.g. {lr0: 0.001, warmup_epochs: 0}")


class EnsembleVariant(Section):
    model_size: str | None = Field(
        None, description="null: the chain's architecture, continuing from ensemble.base_model; a name or "
                          ".yaml: its own architecture, started from `pretrained` (checked against ensemble.budget)"
    )
    pretrained: str = Field(
        "auto", description="where the first weights come from: auto (coco, else imagenet, else none), coco, "
                            "imagenet, none, or a checkpoint path")

    confidence_threshold: float = Field(
        0.25, ge=0, le=1, description="this member's detections below it are dropped before fusion"
    )
    epochs: int | None = Field(None, gt=0, description="null = ensemble.epochs")
    augmentation: dict[str, float] = Field(
        default_factory=dict, description="Ultralytics augmentation hyperparameters (hsv_h, mosaic, ...)"
    )
    init_from: str | None = Field(
        None, description="weights to start from; null = ensemble.base_model, else the baseline, else none"
    )


class FusionConfig(Section):
    method: Literal["wbf", "nms", "soft_nms"] = Field(
        "wbf", description="wbf: weighted boxes fusion; nms; soft_nms: Gaussian score decay"
    )
    iou_threshold: float = Field(0.55, gt=0, le=1, description="same class above this IoU = same object")
    skip_box_threshold: float = Field(0.001, ge=0, le=1, description="ignore boxes scoring below this")
    weights: list[float] | None = Field(None, description="one per variant, in config order; null = equal")
    conf_type: Literal["avg", "max", "box_and_model_avg", "absent_model_aware_avg"] = Field(
        "avg", description="how WBF scores a fused box (ensemble-boxes' options)"
    )

    @field_validator("weights")
    @classmethod
    def _positive_weights(cls, v):
        if v is not None and (min(v) < 0 or max(v) <= 0):
            raise ValueError("weights must be >= 0 with at least one > 0")
        return v


class DeploymentBudget(Section):
    max_params_m: float = Field(5.0, gt=0, description="millions of parameters per model")
    max_gflops: float = Field(12.0, gt=0, description="GFLOPs per image at imgsz (yolov8n: 8.2 at 640, "
                              "yolov8n+efficientnet_lite0: 11.4)")
    imgsz: int = Field(640, ge=32, description="deployment input size the GFLOPs are measured at")


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
    data: str = Field("data/organized/dataset.yaml", description="dataset yaml the variants train on")
    epochs: int = Field(100, gt=0)
    batch_size: int | Literal["auto"] = 16
    imgsz: int | None = Field(None, ge=32, description="training size; null = general.imgsz")
    variants: dict[str, EnsembleVariant] = Field(default_factory=_default_variants, min_length=1)
    train_args: dict = Field(default_factory=dict, description="extra Ultralytics training arguments for every "
                             "variant, e.g. {cache: ram, lr0: 0.001}")
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    budget: DeploymentBudget = Field(default_factory=DeploymentBudget)

    @field_validator("variants")
    @classmethod
    def _plain_names(cls, v: dict[str, EnsembleVariant]):
        for name in v:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or name.endswith("_multiscale"):
                raise ValueError(f"variant name '{name}' must be a plain folder name (letters, digits, _ . -) "
                                 "not ending in _multiscale")
        return v

    @model_validator(mode="after")
    def _weights_match_variants(self):
        if self.fusion.weights is not None and len(self.fusion.weights) != len(self.variants):
            raise ValueError(f"fusion.weights has {len(self.fusion.weights)} entries for "
                             f"{len(self.variants)} variants")
        return self


class MultiscaleTrainingConfig(Section):
    enabled: bool = Field(True, description="when true, calibrate and export use the multi-scale models")
    resolutions: list[int] = Field(
        default_factory=lambda: [480, 512, 576, 640, 704, 768], min_length=1,
        description="each training batch is resized to one of these (multiples of 32)",
    )
    scale_variance: float = Field(
        0.5, ge=0, le=1, description="per-image random zoom gain (+/-), Ultralytics' 'scale' augmentation"
    )
    epochs: int = Field(100, gt=0)
    models: list[str] | None = Field(
        default_factory=list, description="checkpoints to fine-tune; null/empty = checkpoints/ensemble/*/best.pt"
    )
    data: str = Field("data/organized/dataset.yaml", description="dataset yaml to train and evaluate on")
    batch_size: int | Literal["auto"] = 16
    eval_split: Literal["val", "test"] = Field("val", description="split of the before/after small-object AP")
    train_args: dict = Field(default_factory=dict, description="extra Ultralytics training arguments, e.g. "
                             "{cache: ram}")

    @field_validator("resolutions")
    @classmethod
    def _stride_aligned(cls, v: list[int]) -> list[int]:
        bad = [r for r in v if r < 32 or r % 32]
        if bad:
            raise ValueError(f"resolutions must be multiples of 32 (the detector's stride), got {bad}")
        return v
