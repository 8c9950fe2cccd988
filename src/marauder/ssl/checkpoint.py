"""SSL checkpoints: what `ssl-pretrain` writes and what the baseline reads back.

best_moco.pth / last_moco.pth are plain dicts (torch.save) with:
  format "marauder-moco-v3", backbone, feature_dim, encoder (query backbone state dict),
  encoder_prefix (where those keys sit inside the detector's state dict), epoch, metric.
last_moco.pth also carries everything needed to resume: model, optimizer, scaler, step, best, history.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DataError, MissingInputError

FORMAT = "marauder-moco-v3"


@dataclass
class SSLCheckpoint:
    path: Path
    backbone: str
    encoder: dict
    prefix: str
    epoch: int
    metric: dict


def load_ssl_checkpoint(path: str | Path) -> SSLCheckpoint:
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(path, "marauder ssl-pretrain")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise DataError(f"cannot read SSL checkpoint: {exc}", file=str(path)) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise DataError(f"not a Marauder MoCo v3 checkpoint (expected format {FORMAT!r})", file=str(path))
    return SSLCheckpoint(path, ckpt["backbone"], ckpt["encoder"], ckpt.get("encoder_prefix", ""),
                         int(ckpt.get("epoch", 0)), dict(ckpt.get("metric", {})))


def save_checkpoint(path: Path, payload: dict) -> Path:
    """torch.save to a temp file then rename: a kill never leaves a truncated checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"format": FORMAT, **payload}, tmp)
    tmp.replace(path)
    return path
