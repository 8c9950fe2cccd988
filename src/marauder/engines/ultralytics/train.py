"""Training through Ultralytics' own trainer, with outputs copied to our checkpoint folders."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .models import load_yolo, resolve_model_source


@dataclass
class TrainResult:
    best: Path
    last: Path
    run_dir: Path
    metrics: dict = field(default_factory=dict)


def train_detector(
    model: str | Path,
    data_yaml: str | Path,
    run_dir: str | Path,
    *,
    epochs: int,
    imgsz: int,
    batch: int | str = 16,
    device: str | int | list[int] | None = None,
    workers: int = 0,
    seed: int = 0,
    amp: bool = True,
    resume: str | Path | None = None,
    overrides: dict | None = None,
    trainer=None,
) -> TrainResult:
    """Train (or resume) a YOLO detector; Ultralytics writes into `run_dir` (weights/best.pt, last.pt).

    `overrides` carries any other Ultralytics train argument (lr0, warmup_epochs, patience,
    augmentation hyperparameters, ...). `trainer` lets callers pass a DetectionTrainer subclass.
    """
    run_dir = Path(run_dir).resolve()
    args = dict(
        data=str(data_yaml), epochs=epochs, imgsz=imgsz, batch=-1 if batch == "auto" else batch,
        workers=workers, seed=seed, deterministic=True, amp=amp, project=str(run_dir.parent),
        name=run_dir.name, exist_ok=True, plots=False, verbose=False,
    )
    if device not in (None, "auto"):
        args["device"] = ",".join(map(str, device)) if isinstance(device, list) else device
    args.update(overrides or {})
    if resume:
        yolo = load_yolo(resume)
        yolo.train(resume=True, **({"trainer": trainer} if trainer else {}))
    else:
        yolo = load_yolo(resolve_model_source(str(model)))
        yolo.train(**args, **({"trainer": trainer} if trainer else {}))
    weights = run_dir / "weights"
    metrics = dict(getattr(yolo.trainer, "metrics", {}) or {})
    return TrainResult(weights / "best.pt", weights / "last.pt", run_dir, metrics)


def copy_checkpoints(result: TrainResult, dest: str | Path) -> tuple[Path, Path]:
    """Copy best.pt/last.pt into checkpoints/<stage>/ (atomically, via a temp name)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for src, name in ((result.best, "best.pt"), (result.last, "last.pt")):
        target = dest / name
        if src.is_file():
            tmp = dest / f".{name}.tmp"
            shutil.copy2(src, tmp)
            tmp.replace(target)
        out.append(target)
    return out[0], out[1]
