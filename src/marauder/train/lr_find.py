"""Learning-rate range test (Smith 2015): grow the rate exponentially over a few hundred steps, watch
the loss, and suggest the rate where the (smoothed) loss falls fastest."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config.sections.general import GeneralConfig
from ..config.sections.training import BaselineYoloConfig, LRFindConfig
from ..errors import DataError
from ..fsio import atomic_write_json
from ..log import get_logger
from ..workspace import Workspace
from .baseline import check_dataset_yaml, ultralytics_device

log = get_logger("lr_find")


@dataclass
class LRFindResult:
    suggested_lr: float
    lrs: list[float]
    losses: list[float]
    plot: Path


def smooth(values: Sequence[float], beta: float = 0.9) -> list[float]:
    """Bias-corrected exponential moving average (as fastai's lr_find uses)."""
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta ** i))
    return out


def steepest_descent(lrs: Sequence[float], losses: Sequence[float], skip_start: int = 3, skip_end: int = 2
                     ) -> float:
    """The rate at the most negative slope of smoothed loss vs log10(lr)."""
    if len(lrs) < skip_start + skip_end + 3:
        raise DataError(f"lr-find: only {len(lrs)} steps ran; raise baseline_yolo.lr_find.steps or add images")
    sm = smooth(losses)
    lo, hi = skip_start, len(lrs) - skip_end
    slopes = [(sm[i + 1] - sm[i - 1]) / (math.log10(lrs[i + 1]) - math.log10(lrs[i - 1])) for i in range(lo, hi - 1)]
    i = min(range(len(slopes)), key=slopes.__getitem__)
    return float(lrs[lo + i])


def plot_lr_find(lrs: Sequence[float], losses: Sequence[float], suggested: float, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses, alpha=0.3, label="loss")
    ax.plot(lrs, smooth(losses), label="smoothed")
    ax.axvline(suggested, color="red", linestyle="--", label=f"suggested {suggested:.2g}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss", title="LR range test")
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def run_lr_find(cfg: BaselineYoloConfig, lf: LRFindConfig, general: GeneralConfig, workspace: Workspace
                ) -> LRFindResult:
    from ..engines.ultralytics.train import lr_range_test

    if lf.end_lr <= lf.start_lr:
        raise DataError(f"baseline_yolo.lr_find: end_lr ({lf.end_lr}) must be above start_lr ({lf.start_lr})")
    data_yaml = workspace.path(cfg.data)
    check_dataset_yaml(data_yaml)
    batch = 16 if cfg.batch_size == "auto" else int(cfg.batch_size)
    lrs, losses = lr_range_test(
        cfg.model_size, data_yaml, workspace.runs_dir / "lr_find", imgsz=cfg.imgsz or general.imgsz, batch=batch,
        steps=lf.steps, start_lr=lf.start_lr, end_lr=lf.end_lr, device=ultralytics_device(general.device),
        workers=general.num_workers, seed=general.seed, optimizer=cfg.optimizer,
    )
    suggested = steepest_descent(lrs, losses)
    plot = plot_lr_find(lrs, losses, suggested, workspace.path(lf.plot))
    atomic_write_json(plot.with_suffix(".json"), {"suggested_lr": suggested, "lrs": lrs, "losses": losses})
    log.info("lr-find: %d steps, suggested learning rate %.3g", len(lrs), suggested)
    return LRFindResult(suggested, lrs, losses, plot)
