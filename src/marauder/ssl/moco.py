"""MoCo v3 (Chen, Xie, He 2021) from lightly's parts: heads, momentum update, cosine schedule.

Query encoder = backbone + projection MLP + prediction MLP; key (momentum) encoder = backbone +
projection MLP, an exponential moving average of the query side. The loss is the symmetric InfoNCE of
MoCo v3: each view's query is matched against the other view's keys, in-batch negatives, no queue.
lightly's NTXentLoss contrasts both views against each other (SimCLR-style 2N-2 negatives), which is
not MoCo v3's query-vs-key loss, so that one function is written here.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from lightly.models.modules import BYOLPredictionHead, MoCoProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from torch import nn

from ..errors import ConfigError


class ResNetTrunk(nn.Sequential):
    """torchvision ResNet without avgpool/fc; keys '0.weight', '4.0.conv1.weight', ... as the
    detector's TorchVision module numbers them. Returns pooled features."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(super().forward(x), 1), 1)


def build_encoder(backbone: str) -> tuple[nn.Module, int, str]:
    """(encoder returning (N, D) features, D, key prefix inside the detector) for a backbone name."""
    if backbone == "efficientnet_lite0":
        from ..engines.ultralytics.backbone import LiteTrunk, backbone_state_prefix

        return LiteTrunk(), 320, backbone_state_prefix(backbone)
    if backbone == "resnet50":
        import torchvision

        from ..engines.ultralytics.backbone import backbone_state_prefix

        net = torchvision.models.resnet50(weights=None)
        for m in net.modules():  # Ultralytics' detector sets BN eps 1e-3 on every layer: pretrain with it
            if isinstance(m, nn.BatchNorm2d):
                m.eps = 1e-3
        return ResNetTrunk(*list(net.children())[:-2]), 2048, backbone_state_prefix(backbone)
    from ..engines.ultralytics.backbone import yolo_backbone

    try:
        enc, dim = yolo_backbone(backbone)
    except FileNotFoundError as exc:
        raise ConfigError(f"ssl_pretraining.backbone: unknown backbone {backbone!r}: use 'efficientnet_lite0', 'resnet50' or an "
                          f"Ultralytics detection model name such as 'yolov8n' ({exc})") from exc
    return enc, dim, ""


def pretrained_encoder(encoder: nn.Module, backbone: str, prefix: str, asked: str, weights_dir, *,
                       allow_partial: bool, workspace_path=None) -> dict:
    """Load the `ssl_pretraining.pretrained` start into the encoder (domain-adaptive pretraining continues
    from it); returns the init report. The backbone is the configured one: auto never swaps it."""
    from pathlib import Path

    from ..engines.ultralytics.backbone import is_foreign_backbone
    from ..engines.ultralytics.pretrained import check_transfer, resolve_start, start_state, transfer_into

    foreign = backbone if is_foreign_backbone(backbone) else None
    start = resolve_start(asked, "yolov8n" if foreign else backbone, foreign, Path(weights_dir),
                          key="ssl_pretraining.pretrained", keep_backbone=True,
                          workspace_path=workspace_path or Path)
    report = {"pretrained": asked, "source": start.source, "reason": start.reason, "transfers": []}
    got = start_state(start)
    if got is None:
        return report
    state, label = got
    transfer = transfer_into(encoder, state, label, backbone_prefixes=("",), strip=prefix)
    check_transfer(transfer, target_arch=backbone, source_arch=label, allow_partial=allow_partial,
                   key="ssl_pretraining.pretrained")
    report["transfers"].append(transfer.to_json())
    return report


class MoCoV3(nn.Module):
    def __init__(self, backbone: nn.Module, feature_dim: int, hidden_dim: int = 4096, proj_dim: int = 256):
        super().__init__()
        self.backbone = backbone
        # MoCo v3 for CNNs: 2-layer projector and 2-layer predictor, BN in every layer of the projector.
        self.projection_head = MoCoProjectionHead(feature_dim, hidden_dim, proj_dim, num_layers=2,
                                                  batch_norm=True)
        self.prediction_head = BYOLPredictionHead(proj_dim, hidden_dim, proj_dim)
        self.backbone_momentum = copy.deepcopy(backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prediction_head(self.projection_head(self.backbone(x)))

    @torch.no_grad()
    def forward_momentum(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head_momentum(self.backbone_momentum(x))

    @torch.no_grad()
    def update_momentum(self, m: float) -> None:
        update_momentum(self.backbone, self.backbone_momentum, m)
        update_momentum(self.projection_head, self.projection_head_momentum, m)


def contrastive_loss(query: torch.Tensor, key: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE of a query against all keys of the batch; the positive is the same image's key.

    Scaled by 2*temperature as in MoCo v3 so the gradient size does not depend on the temperature.
    """
    q = F.normalize(query.float(), dim=1)
    k = F.normalize(key.float(), dim=1)
    logits = q @ k.t() / temperature
    labels = torch.arange(q.shape[0], device=q.device)
    return F.cross_entropy(logits, labels) * (2 * temperature)


def moco_v3_step(model: MoCoV3, x0: torch.Tensor, x1: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric MoCo v3 loss for two views of a batch."""
    q0, q1 = model(x0), model(x1)
    k0, k1 = model.forward_momentum(x0), model.forward_momentum(x1)
    return contrastive_loss(q0, k1, temperature) + contrastive_loss(q1, k0, temperature)
