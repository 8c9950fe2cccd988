"""SSL pretraining and the baseline detector."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Section


class SSLAugmentations(Section):
    """MoCo v3's ResNet views (BYOL's recipe: Chen, Xie & He 2021, Grill et al. 2020) plus underwater haze."""

    crop_min_scale: float = Field(0.08, gt=0, le=1)
    hue: float = Field(0.1, ge=0, le=0.5)
    saturation: float = Field(0.2, ge=0)
    brightness: float = Field(0.4, ge=0)
    contrast: float = Field(0.4, ge=0)
    color_jitter_prob: float = Field(0.8, ge=0, le=1)
    grayscale_prob: float = Field(0.2, ge=0, le=1)
    blur_prob: float = Field(1.0, ge=0, le=1, description="Gaussian blur on the first view")
    blur_prob_second: float = Field(0.1, ge=0, le=1, description="Gaussian blur on the second view")
    solarize_prob: float = Field(0.2, ge=0, le=1, description="solarization on the second view only")
    preserve_colour: bool = Field(False, description="no hue shift and no grayscale: keep colour as a cue "
                                  "(a purple urchin is told apart by its colour)")
    haze_prob: float = Field(0.3, ge=0, le=1, description="blend towards a water colour (turbidity)")
    hflip_prob: float = Field(0.5, ge=0, le=1)
    vflip_prob: float = Field(0.0, ge=0, le=1)


class SSLPretrainingConfig(Section):
    enabled: bool = True
    model: Literal["moco_v3"] = "moco_v3"
    backbone: str = Field("auto", description="auto: the backbone the baseline will build (the chain's); "
                          "'efficientnet_lite0', 'resnet50' or an Ultralytics model name, e.g. yolov8n")
    pretrained: str = Field(
        "auto", description="where the first weights come from: auto (coco, else imagenet, else none), coco, "
                            "imagenet, none, or a checkpoint path")
    epochs: int = Field(100, gt=0)
    batch_size: int = Field(256, gt=0)
    optimizer: Literal["lars", "sgd"] = Field("lars", description="MoCo v3's ResNet recipe trains with LARS")
    learning_rate: float = Field(0.6, gt=0, description="per 256 images (9.6 at MoCo v3's batch of 4096)")
    weight_decay: float = Field(1e-6, ge=0, description="on weights only: biases and norms are exempt")
    warmup_epochs: int = Field(10, ge=0)
    temperature: float = Field(1.0, gt=0, description="1.0 for ResNets in MoCo v3 (0.2 is for ViTs)")
    momentum_start: float = Field(0.99, ge=0, le=1)
    momentum_end: float = Field(1.0, ge=0, le=1)
    projection_dim: int = Field(256, gt=0)
    hidden_dim: int = Field(4096, gt=0)
    imgsz: int = Field(224, ge=32)
    augmentations: SSLAugmentations = Field(default_factory=SSLAugmentations)
    max_images: int | None = Field(None, ge=1, description="cap on the unlabelled pool; null = all")
    knn_k: int = Field(20, ge=1, description="neighbours of the k-NN probe that picks the best epoch")
    probe_max_crops: int = Field(512, ge=0, description="labelled crops for the k-NN probe; 0 = pick by loss")


class LRFindConfig(Section):
    steps: int = Field(200, ge=10, description="training steps of the range test")
    start_lr: float = Field(1e-6, gt=0)
    end_lr: float = Field(1.0, gt=0)
    plot: str = Field("outputs/lr_find/lr_find.png", description="where the loss/LR plot is saved")


class BaselineYoloConfig(Section):
    model_size: str = Field("yolov8m", description="any Ultralytics detection model name or .yaml/.pt")
    backbone: str | None = Field(
        None, description="null: the model's own (or EfficientNet-Lite0 when pretrained resolves to imagenet); "
                          "efficientnet_lite0 or resnet50 under the model's neck. With use_ssl_backbone the SSL "
                          "checkpoint's backbone is used")
    pretrained: str = Field(
        "auto", description="where the first weights come from: auto (coco, else imagenet, else none), coco, "
                            "imagenet, none, or a checkpoint path")
    use_ssl_backbone: bool = True
    ssl_checkpoint: str = "checkpoints/ssl/best_moco.pth"
    data: str = "data/organized/dataset.yaml"
    epochs: int = Field(300, gt=0)
    batch_size: int | Literal["auto"] = 16
    learning_rate: float = Field(0.01, gt=0)
    warmup_epochs: float = Field(3, ge=0)
    patience: int = Field(50, ge=0)
    imgsz: int | None = Field(None, ge=32, description="null = general.imgsz")
    optimizer: str = "SGD"
    cache: bool = False
    train_args: dict = Field(default_factory=dict, description="extra Ultralytics training arguments, e.g. "
                             "{freeze: 1, cache: ram} (frozen backbone, images in memory)")
    lr_find: LRFindConfig = Field(default_factory=LRFindConfig)
