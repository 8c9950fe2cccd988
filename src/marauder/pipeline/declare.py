"""How a stage declares itself: next to its command (`STAGE = Stage(...)` in commands/<name>.py).

A declaration names every config section the command reads, its input and output files, the extra
arguments the pipeline passes, when it is enabled and the one metric the summary shows. The pipeline
reads these declarations and nothing else: the fingerprint of a stage is its declared sections and
inputs, so a declaration that drifted from its command would let a change go unnoticed (a unit test
scans each command for sections it reads but does not declare).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the declarations load with `marauder --help`: nothing heavy at import time
    from ..config import MarauderConfig
    from ..workspace import Workspace

Paths = Callable[["Workspace", "MarauderConfig"], list[Path]]
Args = Callable[["Workspace", "MarauderConfig"], list[str]]

# sections that change how a run is watched, never what it writes: not fingerprinted
NOT_FINGERPRINTED = ("logging",)


def _none(ws: Workspace, cfg: MarauderConfig) -> list:
    return []


@dataclass(frozen=True)
class Stage:
    name: str  # the marauder subcommand
    sections: tuple[str, ...]  # every config section its command reads, but NOT_FINGERPRINTED (a test checks)
    inputs: Paths = _none
    outputs: Paths = _none
    args: Args = _none
    enabled: Callable[[MarauderConfig], bool] = field(default=lambda cfg: True)
    metric: Callable[[Workspace], str | None] = field(default=lambda ws: None)


# -- the deployed models, which calibrate and export must agree on ------------------------------------
def variant_weights(ws: Workspace, cfg: MarauderConfig) -> list[Path]:
    """The ensemble members as the ensemble stage trained them."""
    return [ws.ensemble_dir(name) / "best.pt" for name in cfg.ensemble.variants]


def multiscale_weights(ws: Workspace, cfg: MarauderConfig) -> list[Path]:
    return [ws.multiscale_dir(name) / "best.pt" for name in cfg.ensemble.variants]


def deployed_weights(ws: Workspace, cfg: MarauderConfig) -> list[Path]:
    """The models the package carries: the multi-scale fine-tunes when that stage runs, else the
    ensemble members. Calibrate and export both use exactly these (so the calibrated thresholds were
    fitted on the deployed models), and their fingerprints follow these files."""
    return multiscale_weights(ws, cfg) if cfg.multiscale_training.enabled else variant_weights(ws, cfg)


# -- reading a stage's headline figure ------------------------------------------------------------
def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def json_metric(path: Path, *keys: str) -> str | None:
    data = read_json(path)
    try:
        for key in keys:
            data = data[key]
        return f"{keys[-1]}={float(data):.3f}"
    except (KeyError, TypeError, ValueError):
        return None


def last_epoch_metric(ws: Workspace, checkpoints: str) -> str | None:
    """The last line of a training stage's metrics.jsonl, when it has one."""
    try:
        last = json.loads(ws.stage_metrics(checkpoints).read_text().strip().splitlines()[-1])
    except (OSError, IndexError, ValueError):
        return None
    for key in ("metrics/mAP50-95(B)", "mAP50-95", "metrics/mAP50(B)", "loss", "train_loss"):
        if key in last:
            return f"{key}={float(last[key]):.3f}"
    return None
