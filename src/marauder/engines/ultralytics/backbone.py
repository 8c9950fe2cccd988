"""Detector backbones for self-supervised pretraining, and loading SSL weights back into detectors.

Two backbone families:
- any Ultralytics detection model (yolov8n, yolo11s, ...): the layers listed under `backbone:` in its
  yaml, i.e. everything before the neck. Their state-dict keys are the detector's own ("model.3.conv...").
- `resnet50` (torchvision): the detector embeds it with Ultralytics' `TorchVision` module and taps
  layer2/3/4 (strides 8/16/32) with `Index` layers; a YOLOv8 neck and Detect head sit on top.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import torch
from torch import nn

from .models import resolve_model_source

TORCHVISION_BACKBONES = {"resnet50": {"channels": (512, 1024, 2048), "taps": (6, 7, 8)}}
# Keys of the torchvision encoder live under this prefix inside the detector (model.0 = TorchVision, .m = layers).
TORCHVISION_PREFIX = "model.0.m."


def is_torchvision_backbone(name: str) -> bool:
    return name in TORCHVISION_BACKBONES


def _model_yaml(model_size: str) -> dict:
    from ultralytics.nn.tasks import yaml_model_load

    source = resolve_model_source(model_size)
    if source.endswith(".pt"):
        from ultralytics.nn.tasks import load_checkpoint

        model, _ = load_checkpoint(source)
        return copy.deepcopy(model.yaml)
    return yaml_model_load(source)


def _scale_letter(model_size: str) -> str:
    m = re.search(r"yolo[a-z]*\d+([nslmx])", Path(model_size).stem)
    return m.group(1) if m else "n"


def torchvision_detector_yaml(backbone: str, model_size: str, nc: int) -> dict:
    """A YOLOv8-style detector (neck + Detect) on a torchvision backbone, at model_size's width scale."""
    spec = TORCHVISION_BACKBONES[backbone]
    p3, p4, p5 = spec["channels"]
    t3, t4, t5 = spec["taps"]
    return {
        "nc": nc,
        "scale": _scale_letter(model_size),
        "scales": {"n": [0.33, 0.25, 1024], "s": [0.33, 0.50, 1024], "m": [0.67, 0.75, 768],
                   "l": [1.00, 1.00, 512], "x": [1.00, 1.25, 512]},
        # weights=None: never download; split=True returns every stage so Index can tap strides 8/16/32
        "backbone": [
            [-1, 1, "TorchVision", [p5, backbone, None, True, 2, True]],  # 0: list of stage outputs
            [0, 1, "Index", [p3, t3]],  # 1: P3/8
            [0, 1, "Index", [p4, t4]],  # 2: P4/16
            [0, 1, "Index", [p5, t5]],  # 3: P5/32
        ],
        "head": [
            [-1, 1, "nn.Upsample", [None, 2, "nearest"]],  # 4
            [[-1, 2], 1, "Concat", [1]],  # 5
            [-1, 3, "C2f", [512]],  # 6
            [-1, 1, "nn.Upsample", [None, 2, "nearest"]],  # 7
            [[-1, 1], 1, "Concat", [1]],  # 8
            [-1, 3, "C2f", [256]],  # 9 (P3 out)
            [-1, 1, "Conv", [256, 3, 2]],  # 10
            [[-1, 6], 1, "Concat", [1]],  # 11
            [-1, 3, "C2f", [512]],  # 12 (P4 out)
            [-1, 1, "Conv", [512, 3, 2]],  # 13
            [[-1, 3], 1, "Concat", [1]],  # 14
            [-1, 3, "C2f", [1024]],  # 15 (P5 out)
            [[9, 12, 15], 1, "Detect", ["nc"]],
        ],
    }


def build_detection_model(model_size: str, nc: int, backbone: str | None = None, verbose: bool = False):
    """An untrained DetectionModel: model_size's architecture, or a torchvision backbone + YOLOv8 neck."""
    from ultralytics.nn.tasks import DetectionModel

    if backbone and is_torchvision_backbone(backbone):
        cfg = torchvision_detector_yaml(backbone, model_size, nc)
    else:
        cfg = _model_yaml(backbone or model_size)
    return DetectionModel(cfg, nc=nc, verbose=verbose)


class YoloBackbone(nn.Module):
    """The layers of an Ultralytics detector before its neck, run the way the detector runs them.

    `self.model` keeps the detector's numbering, so state-dict keys equal the detector's keys.
    """

    def __init__(self, model_name: str):
        super().__init__()
        from ultralytics.nn.tasks import DetectionModel

        cfg = _model_yaml(model_name)
        n_backbone = len(cfg["backbone"])
        full = DetectionModel(cfg, nc=1, verbose=False)
        self.model = nn.ModuleList(list(full.model.children())[:n_backbone])
        self.save = [i for i in full.save if i < n_backbone]
        with torch.no_grad():
            self.out_channels = int(self._features(torch.zeros(1, 3, 64, 64)).shape[1])

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        y: list = []
        for m in self.model:
            if m.f != -1:
                x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
            x = m(x)
            y.append(x if m.i in self.save else None)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self._features(x), 1), 1)


def yolo_backbone(model_name: str) -> tuple[nn.Module, int]:
    """(encoder producing pooled features, feature dim) for an Ultralytics model's backbone."""
    enc = YoloBackbone(model_name)
    return enc, enc.out_channels


def backbone_state_prefix(backbone: str) -> str:
    """Where an SSL encoder's keys sit inside the detector's state dict."""
    return TORCHVISION_PREFIX if is_torchvision_backbone(backbone) else ""


def load_encoder_into_detector(model: nn.Module, encoder_state: dict, prefix: str) -> tuple[int, list[str]]:
    """Copy encoder tensors into the detector; returns (tensors loaded, encoder keys that did not fit).

    A key fits when prefix+key exists in the detector with the same shape. BatchNorm counters
    (num_batches_tracked) are copied but not counted: they match between any two networks.
    """
    target = model.state_dict()
    loaded, misfit = 0, []
    with torch.no_grad():
        for key, value in encoder_state.items():
            name = prefix + key
            if name in target and target[name].shape == value.shape:
                target[name].copy_(value.to(target[name].dtype))
                if not key.endswith("num_batches_tracked"):
                    loaded += 1
            elif not key.endswith("num_batches_tracked"):
                misfit.append(key)
    return loaded, misfit


def save_init_checkpoint(model: nn.Module, path: str | Path, names: list[str] | None = None) -> Path:
    """Save an in-memory DetectionModel as an Ultralytics-style checkpoint that YOLO(path) can train from."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).float()
    if names:
        model.names = dict(enumerate(names))
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"model": model, "ema": None, "epoch": -1, "optimizer": None, "train_args": {},
                "date": None, "version": "marauder-ssl-init"}, tmp)
    tmp.replace(path)
    return path
