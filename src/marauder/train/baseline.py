"""The `train-baseline` stage: the first YOLO detector, optionally starting from the SSL backbone.

Ultralytics does the training; this module decides what to train from (pretrained weights, the model
yaml, or an SSL-initialised detector), maps our config onto Ultralytics' arguments, resumes an
interrupted run, and keeps checkpoints/baseline/ (best.pt, last.pt, metrics.jsonl) current.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..config.sections.general import CheckpointingConfig, GeneralConfig, LoggingConfig
from ..config.sections.stages import EnsembleConfig
from ..config.sections.training import BaselineYoloConfig
from ..errors import ConfigError, DataError, MissingInputError
from ..fsio import atomic_write_json, list_images
from ..log import get_logger
from ..workspace import Workspace
from .common import Tracker, pick_resume, write_jsonl

log = get_logger("baseline")
STAGE = "baseline"


@dataclass
class BaselineResult:
    best: Path
    last: Path | None
    run_dir: Path
    metrics: dict = field(default_factory=dict)
    resumed_from: Path | None = None
    ssl_tensors_loaded: int = 0
    batch: int = 0
    accumulate: int = 1


def _line_of(text: str, key: str) -> int | None:
    for i, line in enumerate(text.splitlines(), 1):
        if re.match(rf"^{re.escape(key)}\s*:", line):
            return i
    return None


def check_dataset_yaml(path: Path) -> list[str]:
    """Fail before training when dataset.yaml is missing, malformed, or names a split that isn't there.

    Returns the class names.
    """
    if not path.is_file():
        raise MissingInputError(path, "marauder organize")
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise DataError(f"not valid YAML: {exc}", file=str(path)) from exc
    if not isinstance(data, dict):
        raise DataError("expected a mapping with path/train/val/names", file=str(path))
    names = data.get("names")
    if not names:
        raise DataError("no class names ('names' key missing or empty)", file=str(path), line=_line_of(text, "names"))
    root = Path(data.get("path") or path.parent)
    if not root.is_absolute():
        root = (path.parent / root).resolve()
    for split in ("train", "val", "test"):
        entry = data.get(split)
        if entry is None:
            if split in ("train", "val"):
                raise DataError(f"split {split!r} is missing", file=str(path))
            continue
        for item in entry if isinstance(entry, list) else [entry]:
            folder = Path(item) if Path(item).is_absolute() else root / item
            if folder.is_file() and folder.suffix == ".txt":  # Ultralytics also accepts a list file
                continue
            if not list_images(folder, recursive=True):
                raise DataError(f"split {split!r}: {folder} has no images", file=str(path),
                                line=_line_of(text, split))
    return [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)


def accumulation_nbs(batch: int, steps: int) -> int | None:
    """Ultralytics accumulates gradients to a nominal batch `nbs` (accumulate = round(nbs / batch)) and
    scales weight decay by batch*accumulate/nbs. steps == 1 keeps Ultralytics' recipe (None: its nbs of
    64 stands); steps = k > 1 sets nbs = batch*k, exactly k accumulation steps and unchanged weight decay."""
    return None if steps == 1 else batch * steps


def ultralytics_device(device) -> str | None:
    """general.device -> Ultralytics' device string; a list of GPUs ('0,1') makes Ultralytics run DDP."""
    if device in (None, "auto"):
        return None
    if isinstance(device, list):
        return ",".join(str(d) for d in device)
    return str(device)


INIT_CHECKPOINT = f"{STAGE}_init.pt"  # under runs/: the detector as initialised, before any training
INIT_REPORT = "init.json"  # under checkpoints/baseline/: what the start was and how much of it loaded


def initialise_detector(cfg: BaselineYoloConfig, general: GeneralConfig, names: list[str], workspace: Workspace,
                        init_path: Path, ensemble: EnsembleConfig | None = None) -> tuple[Path, dict]:
    """Build the chain's detector with its pretrained start (and the SSL backbone over it), save it as a .pt.

    Returns (the .pt, the init report). Raises DataError when the weights do not fit the architecture.
    """
    from ..engines.ultralytics.backbone import is_foreign_backbone, save_init_checkpoint
    from ..engines.ultralytics.pretrained import (
        check_transfer,
        initial_detector,
        transfer_into,
    )
    from ..ssl.checkpoint import load_ssl_checkpoint
    from .chain import plan_chain_start

    ssl = None
    backbone = cfg.backbone
    if cfg.use_ssl_backbone:
        ssl = load_ssl_checkpoint(workspace.path(cfg.ssl_checkpoint))
        backbone = ssl.backbone if is_foreign_backbone(ssl.backbone) else None
    # the SSL checkpoint fixed the backbone: auto must not swap it
    start, chain = plan_chain_start(cfg, general, ensemble, len(names), workspace, backbone,
                                    keep_backbone=cfg.use_ssl_backbone)
    import torch

    torch.manual_seed(general.seed)  # the random parts (neck, head) are the same every run
    model, transfer = initial_detector(start, len(names), allow_partial=general.allow_partial_init,
                                       key="baseline_yolo.pretrained")
    transfers = [transfer.to_json()]
    if ssl is not None:
        from ..engines.ultralytics.pretrained import detector_backbone_prefixes

        encoder = {ssl.prefix + k: v for k, v in ssl.encoder.items()}
        ssl_transfer = transfer_into(model, encoder, f"SSL checkpoint {ssl.path} (backbone {ssl.backbone}, "
                                     f"epoch {ssl.epoch})", backbone_prefixes=detector_backbone_prefixes(model))
        if ssl_transfer.tensors_loaded == 0 or ssl_transfer.tensors_loaded < len(
                [k for k in ssl.encoder if not k.endswith("num_batches_tracked")]):
            raise DataError(
                f"SSL checkpoint backbone {ssl.backbone!r} does not fit the {start.arch!r} detector: "
                f"{ssl_transfer.describe()}. Pretrain with ssl_pretraining.backbone={start.arch.partition('+')[0]} "
                "(or efficientnet_lite0 / resnet50), or set baseline_yolo.use_ssl_backbone=false",
                file=str(ssl.path))
        check_transfer(ssl_transfer, target_arch=start.arch, source_arch=ssl.backbone,
                       allow_partial=general.allow_partial_init, key="baseline_yolo.use_ssl_backbone")
        transfers.append(ssl_transfer.to_json())
    report = {"pretrained": cfg.pretrained, "source": start.source, "reason": start.reason, "arch": start.arch,
              "weights": str(start.weights) if start.weights else None, "transfers": transfers,
              "budget": chain.cost if chain else None, "budget_note": chain.note if chain else None}
    return save_init_checkpoint(model, init_path, names), report


def preflight(cfg: BaselineYoloConfig, workspace: Workspace) -> list[str]:
    """Every check that can fail on user input, before anything is written. Returns the class names."""
    if cfg.epochs <= 0:
        raise ConfigError(f"baseline_yolo.epochs must be > 0, got {cfg.epochs}")
    names = check_dataset_yaml(workspace.path(cfg.data))
    ckpt = workspace.path(cfg.ssl_checkpoint)
    if cfg.use_ssl_backbone and not ckpt.is_file():
        raise MissingInputError(ckpt, "marauder ssl-pretrain` (or set baseline_yolo.use_ssl_backbone=false")
    return names


def run_baseline(
    cfg: BaselineYoloConfig,
    general: GeneralConfig,
    workspace: Workspace,
    *,
    checkpointing: CheckpointingConfig | None = None,
    logging_cfg: LoggingConfig | None = None,
    resume: str | Path | None = None,
    ensemble: EnsembleConfig | None = None,
) -> BaselineResult:
    """Train the baseline detector into checkpoints/baseline/; resume an interrupted run automatically."""
    from ..engines.ultralytics.callbacks import mirror_checkpoints, results_rows, track_epochs
    from ..engines.ultralytics.train import copy_checkpoints, is_unfinished, largest_batch, train_detector

    checkpointing = checkpointing or CheckpointingConfig()
    data_yaml = workspace.path(cfg.data)
    names = preflight(cfg, workspace)
    imgsz = cfg.imgsz or general.imgsz
    run_dir = workspace.runs_dir / STAGE
    dest = workspace.checkpoints(STAGE)
    resume_from = pick_resume(resume, [run_dir / "weights" / "last.pt", dest / "last.pt"], is_unfinished)

    loaded = 0
    model: str | Path = cfg.model_size
    if resume_from:
        log.info("resuming from %s", resume_from)
    else:
        model, init = initialise_detector(cfg, general, names, workspace, workspace.runs_dir / INIT_CHECKPOINT,
                                          ensemble)
        atomic_write_json(dest / INIT_REPORT, init)
        loaded = sum(t["tensors_loaded"] for t in init["transfers"][1:])  # the SSL backbone's share

    device = ultralytics_device(general.device)
    if cfg.batch_size == "auto":
        import torch

        probe_device = "cuda:" + (device.split(",")[0] if device else "0") if torch.cuda.is_available() and \
            device != "cpu" else "cpu"
        batch = largest_batch(model, imgsz, probe_device, amp=general.mixed_precision)
        log.info("batch_size auto: %d (largest power-of-two multiple of 16 that fits on %s)", batch, probe_device)
    else:
        batch = int(cfg.batch_size)
    accumulate = general.gradient_accumulation_steps
    overrides = {
        "lr0": cfg.learning_rate, "warmup_epochs": cfg.warmup_epochs, "patience": cfg.patience,
        "optimizer": cfg.optimizer, "cache": cfg.cache, "save_period": checkpointing.save_period,
    }
    nbs = accumulation_nbs(batch, accumulate)
    if nbs is not None:  # a deviation from Ultralytics' recipe that the user asked for
        log.info("general.gradient_accumulation_steps=%d: nbs %d (Ultralytics' default is 64)", accumulate, nbs)
        overrides["nbs"] = nbs
    if cfg.train_args:  # the user's own Ultralytics arguments win; each one is a deviation worth a log line
        log.info("baseline_yolo.train_args: %s", ", ".join(f"{k}={v}" for k, v in cfg.train_args.items()))
        overrides.update(cfg.train_args)
    jsonl = dest / "metrics.jsonl"
    log.info("training %s on %s: %d epochs, imgsz %d, batch %d x %d accumulation, device %s",
             Path(str(model)).name, data_yaml, cfg.epochs, imgsz, batch, accumulate, device or "auto")
    tracker = Tracker(None, logging_cfg, tb_dir=run_dir / "tensorboard", run_name=STAGE,
                      run_config={"baseline_yolo": cfg.model_dump(mode="json"),
                                  "general": general.model_dump(mode="json")})
    try:
        result = train_detector(
            model, data_yaml, run_dir, epochs=cfg.epochs, imgsz=imgsz, batch=batch, device=device,
            workers=general.num_workers, seed=general.seed, amp=general.mixed_precision, resume=resume_from,
            deterministic=general.deterministic,
            overrides=overrides,
            callbacks={
                "on_model_save": [mirror_checkpoints(dest, save_best_only=checkpointing.save_best_only,
                                                     keep_last_n=checkpointing.keep_last_n)],
                "on_fit_epoch_end": [track_epochs(tracker, jsonl)],
            },
        )
    finally:
        tracker.close()
    if not result.best.is_file():
        raise DataError(f"training finished without a best.pt in {result.run_dir / 'weights'}")
    best, last = copy_checkpoints(result, dest)
    if checkpointing.save_best_only:
        last.unlink(missing_ok=True)
        last = None
    rows = results_rows(result.run_dir / "results.csv")
    if rows:
        write_jsonl(jsonl, rows)
    return BaselineResult(best, last, result.run_dir, result.metrics, resume_from, loaded, batch, accumulate)
