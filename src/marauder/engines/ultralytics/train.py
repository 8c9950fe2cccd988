"""Training through Ultralytics' own trainer, with outputs copied to our checkpoint folders."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .callbacks import copy_atomic
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
    deterministic: bool = True,
    resume: str | Path | None = None,
    overrides: dict | None = None,
    trainer=None,
    callbacks: dict[str, list[Callable]] | None = None,
) -> TrainResult:
    """Train (or resume) a YOLO detector; Ultralytics writes into `run_dir` (weights/best.pt, last.pt).

    `overrides` carries any other Ultralytics train argument (lr0, warmup_epochs, patience,
    augmentation hyperparameters, ...). `trainer` lets callers pass a DetectionTrainer subclass.
    `callbacks` maps Ultralytics events (on_fit_epoch_end, on_model_save, ...) to functions of the
    trainer; with DDP (a device list) Ultralytics pickles them into its rank-0 worker process, so they
    must be picklable (see `Tracker.__getstate__`)."""
    run_dir = Path(run_dir).resolve()
    args = dict(
        data=str(data_yaml), epochs=epochs, imgsz=imgsz, batch=-1 if batch == "auto" else batch,
        workers=workers, seed=seed, deterministic=deterministic, amp=amp, project=str(run_dir.parent),
        name=run_dir.name, exist_ok=True, plots=False, verbose=False,
    )
    if device not in (None, "auto"):
        args["device"] = ",".join(map(str, device)) if isinstance(device, list) else device
    args.update(overrides or {})
    yolo = load_yolo(resume if resume else resolve_model_source(str(model)))
    for event, funcs in (callbacks or {}).items():
        for func in funcs:
            yolo.add_callback(event, func)
    freeze_long_lived()
    yolo.add_callback("on_train_start", freeze_long_lived)
    try:
        with engine_logs_to_stage_log():
            if resume:  # the checkpoint's own arguments win, except where the machine may have changed
                machine = {k: args[k] for k in ("device", "workers") if k in args}
                yolo.train(resume=True, **machine, **({"trainer": trainer} if trainer else {}))
            else:
                yolo.train(**args, **({"trainer": trainer} if trainer else {}))
    finally:
        gc.unfreeze()  # a caller that goes on (the pipeline, a test) gets its collector back whole
    run_dir = Path(getattr(yolo.trainer, "save_dir", run_dir))  # a resumed run writes where it first ran
    weights = run_dir / "weights"
    metrics = dict(getattr(yolo.trainer, "metrics", {}) or {})
    return TrainResult(weights / "best.pt", weights / "last.pt", run_dir, metrics)


def freeze_long_lived(trainer=None) -> None:
    """Move every object alive now out of the cyclic collector's reach, until training returns. Called
    before training and again once the trainer has built its model, data and optimizer: those ~400k
    objects (torch, Ultralytics, the datasets, our config) outlive the training, and each full
    collection would rescan them (60-160 ms each on 2 cores; 0.67 s of `yolo train`'s 25 s CPU run,
    0.35 s of ours with this). Refcounting still frees them; cycles among them wait for the unfreeze."""
    gc.freeze()


def copy_checkpoints(result: TrainResult, dest: str | Path) -> tuple[Path, Path]:
    """Copy best.pt/last.pt into checkpoints/<stage>/ (atomically, via a temp name)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for src, name in ((result.best, "best.pt"), (result.last, "last.pt")):
        target = dest / name
        if src.is_file():
            copy_atomic(src, target)
        out.append(target)
    return out[0], out[1]


@contextlib.contextmanager
def engine_logs_to_stage_log() -> Iterator[None]:
    """Also write Ultralytics' own log lines (epoch summaries, val metrics) into the stage's log file."""
    ours = [h for h in logging.getLogger("marauder").handlers if isinstance(h, logging.FileHandler)]
    engine = logging.getLogger("ultralytics")
    for h in ours:
        engine.addHandler(h)
    try:
        yield
    finally:
        for h in ours:
            engine.removeHandler(h)


def read_checkpoint(path: str | Path) -> dict:
    """An Ultralytics checkpoint as a dict (it pickles Ultralytics classes, hence weights_only=False)."""
    import torch

    return torch.load(str(path), map_location="cpu", weights_only=False)


def is_unfinished(path: str | Path) -> bool:
    """True when an Ultralytics last.pt can be resumed (training was interrupted before its last epoch).

    A finished run's checkpoints have their optimizer stripped and epoch set to -1.
    """
    try:
        ckpt = read_checkpoint(path)
    except Exception:  # noqa: BLE001 - a truncated or foreign file is simply not resumable
        return False
    epochs = int((ckpt.get("train_args") or {}).get("epochs", 0))
    epoch = ckpt.get("epoch", -1)
    return ckpt.get("optimizer") is not None and epoch is not None and 0 <= epoch and epoch + 1 < epochs


def dataset_names(data_yaml: str | Path) -> list[str]:
    """Class names of a dataset.yaml as Ultralytics reads them (list or {index: name})."""
    from ultralytics.utils import YAML

    names = YAML.load(str(data_yaml)).get("names", [])
    return [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)


def _tensor_sum(out):
    """Sum of the means of every tensor in a (nested) model output: something to backpropagate."""
    if hasattr(out, "float") and hasattr(out, "mean"):
        return out.float().mean()
    items = out.values() if isinstance(out, dict) else out
    return sum(_tensor_sum(o) for o in items)


def largest_batch(model_source: str | Path, imgsz: int, device: str, start: int = 16,
                  limit: int = 1024, amp: bool = True) -> int:
    """The guide's "double the batch until out of memory, then use the previous one", on a real
    forward+backward pass. Only meaningful on CUDA; elsewhere there is no OOM to find and `start` is used."""
    import torch

    from ...train.common import double_until_failure

    if not str(device).startswith("cuda"):
        return start
    model = load_yolo(resolve_model_source(str(model_source))).model.to(device).train()
    for p in model.parameters():
        p.requires_grad_(True)

    def fits(batch: int) -> bool:
        try:
            x = torch.rand(batch, 3, imgsz, imgsz, device=device)
            with torch.autocast("cuda", enabled=amp):
                out = model(x)
            _tensor_sum(out).backward()
            model.zero_grad(set_to_none=True)
            return True
        except torch.cuda.OutOfMemoryError:
            return False
        finally:
            torch.cuda.empty_cache()

    best = double_until_failure(fits, start, limit)
    model.to("cpu")  # release GPU memory before Ultralytics builds its own copy
    torch.cuda.empty_cache()
    if best is None:
        from ...errors import MarauderError

        raise MarauderError(f"batch_size auto: even batch {start} does not fit on {device} at imgsz {imgsz}; "
                            "set a smaller batch_size or imgsz")
    return best


def lr_range_test(
    model: str | Path,
    data_yaml: str | Path,
    work_dir: str | Path,
    *,
    imgsz: int,
    batch: int,
    steps: int,
    start_lr: float,
    end_lr: float,
    device: str | None = None,
    workers: int = 0,
    seed: int = 0,
    optimizer: str = "SGD",
    stop_factor: float = 4.0,
) -> tuple[list[float], list[float]]:
    """Train for up to `steps` batches with the learning rate growing exponentially from start_lr to
    end_lr, using Ultralytics' own model, data pipeline, loss and optimizer; return (lrs, losses).

    Stops early once the smoothed loss exceeds stop_factor x its best (the rate has become too high).
    """
    import math

    import torch
    from ultralytics.models.yolo.detect import DetectionTrainer

    work_dir = Path(work_dir).resolve()
    args = dict(model=resolve_model_source(str(model)), data=str(data_yaml), imgsz=imgsz, batch=batch,
                workers=workers, seed=seed, deterministic=True, epochs=1, plots=False, verbose=False, amp=False,
                project=str(work_dir.parent), name=work_dir.name, exist_ok=True, optimizer=optimizer)
    if device not in (None, "auto"):
        args["device"] = device
    trainer = DetectionTrainer(overrides=args)
    trainer.setup_model()
    trainer.model = trainer.model.to(trainer.device).train()
    trainer.set_model_attributes()
    for p in trainer.model.parameters():
        p.requires_grad_(True)
    loader = trainer.get_dataloader(trainer.data["train"], batch_size=batch, rank=-1, mode="train")
    opt = trainer.build_optimizer(trainer.model, name=optimizer, lr=start_lr, momentum=trainer.args.momentum,
                                  decay=trainer.args.weight_decay)
    gamma = (end_lr / start_lr) ** (1 / max(1, steps - 1))
    lrs, losses, best, avg = [], [], math.inf, 0.0
    step = 0
    while step < steps:
        for b in loader:
            lr = start_lr * gamma ** step
            for g in opt.param_groups:
                g["lr"] = lr
            b = trainer.preprocess_batch(b)
            loss, _ = trainer.model(b)
            loss = loss.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), max_norm=10.0)
            opt.step()
            value = float(loss.detach())
            lrs.append(lr)
            losses.append(value)
            step += 1
            avg = 0.9 * avg + 0.1 * value  # bias-corrected EMA: single noisy batches must not stop the test
            smoothed = avg / (1 - 0.9 ** step)
            best = min(best, smoothed)
            diverged = step > max(10, steps // 10) and smoothed > stop_factor * best
            if not math.isfinite(value) or diverged or step >= steps:
                return lrs, losses
    return lrs, losses


def validate_detector(weights: str | Path, data_yaml: str | Path, *, split: str = "val", imgsz: int = 640,
                      batch: int = 16, device: str | None = None, workers: int = 0) -> dict:
    """Ultralytics' own box metrics (precision, recall, mAP50, mAP50-95) of a checkpoint on one split."""
    yolo = load_yolo(weights)
    kwargs = dict(data=str(data_yaml), split=split, imgsz=imgsz, batch=batch, workers=workers, plots=False,
                  verbose=False)
    if device not in (None, "auto"):
        kwargs["device"] = device
    metrics = yolo.val(**kwargs)
    return {k: float(v) for k, v in metrics.results_dict.items()}
