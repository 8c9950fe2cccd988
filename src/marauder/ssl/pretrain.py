"""The `ssl-pretrain` stage: MoCo v3 on the unlabelled pool, checkpoints under checkpoints/ssl/.

Each epoch ends with a checkpoint (last_moco.pth, enough to resume) and a proxy score: k-NN accuracy
on labelled crops when a labelled set exists, else the epoch's mean loss. The best epoch's encoder
goes to best_moco.pth. Restarting the same command continues from last_moco.pth.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from lightly.utils.scheduler import cosine_schedule

from ..config.sections.general import GeneralConfig, LoggingConfig
from ..config.sections.training import SSLPretrainingConfig
from ..errors import ConfigError, DataError
from ..log import get_logger, progress
from ..train.common import Tracker
from .augment import two_view_transform
from .checkpoint import FORMAT, save_checkpoint
from .data import UnlabelledImages, collate_views, collect_images
from .moco import MoCoV3, build_encoder, moco_v3_step, pretrained_encoder
from .probe import embed, has_two_classes, knn_accuracy, knn_transfer_accuracy, labelled_crops

log = get_logger("ssl")


@dataclass
class SSLResult:
    best: Path
    last: Path
    backbone: str
    images: int
    skipped_images: int
    epochs_trained: int
    best_metric: dict
    images_per_second: float = 0.0
    history: list[dict] = field(default_factory=list)


def select_device(device) -> torch.device:
    """general.device -> one torch device (SSL trains on one device; a list uses its first GPU)."""
    if isinstance(device, list):
        device = device[0] if device else "auto"
    if isinstance(device, str) and "," in device:  # Ultralytics' "0,1" spelling of a GPU list
        device = device.split(",")[0].strip()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, int) or str(device).isdigit():
        return torch.device(f"cuda:{device}")
    try:
        return torch.device(str(device))
    except RuntimeError as exc:
        raise ConfigError(f"general.device: {device!r} is not a device (use auto, cpu, cuda:N, N or a list of "
                          f"GPU numbers): {exc}") from None


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def learning_rate_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up to `peak`, then cosine decay to 0 (MoCo v3's schedule)."""
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    return cosine_schedule(step - warmup, max(1, total - warmup), peak, 0.0)


def make_optimizer(model: torch.nn.Module, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """LARS (or SGD) with momentum 0.9; biases and norm weights (1-D tensors) get no weight decay and,
    under LARS, no trust-ratio adaptation, as in MoCo v3."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
              {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    if name == "lars":
        from lightly.utils.lars import LARS

        return LARS(groups, lr=lr, momentum=0.9)  # zero-decay groups are exempt from adaptation
    return torch.optim.SGD(groups, lr=lr, momentum=0.9)


def _load_resume(last: Path, backbone: str) -> dict | None:
    if not last.is_file():
        return None
    try:
        state = torch.load(last, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated or foreign: the same user error
        raise DataError(f"cannot read it to resume ({exc}); delete it to start over", file=str(last)) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "model" not in state:
        raise DataError("not a resumable MoCo v3 checkpoint; delete it to start over", file=str(last))
    if state["backbone"] != backbone:
        raise DataError(f"holds backbone {state['backbone']!r} but ssl_pretraining.backbone is {backbone!r}: "
                        "delete it (or move it away) to pretrain the new backbone", file=str(last))
    return state


def run_ssl_pretrain(
    cfg: SSLPretrainingConfig,
    general: GeneralConfig,
    out_dir: Path,
    unlabelled_dirs: Sequence[Path],
    *,
    labelled: Sequence[tuple[Path, Path]] = (),
    labelled_val: Sequence[tuple[Path, Path]] = (),
    exclude_sha256: set[str] | None = None,
    logging_cfg: LoggingConfig | None = None,
    tb_dir: Path | None = None,
    weights_dir: Path | None = None,
) -> SSLResult:
    """Pretrain cfg.backbone with MoCo v3; write best_moco.pth / last_moco.pth / metrics.jsonl to out_dir."""
    if cfg.epochs <= 0:
        raise DataError(f"ssl_pretraining.epochs must be > 0, got {cfg.epochs}")
    out_dir = Path(out_dir)
    best_path, last_path = out_dir / "best_moco.pth", out_dir / "last_moco.pth"
    paths = collect_images(unlabelled_dirs, cfg.max_images, general.seed, exclude_sha256=exclude_sha256)
    if len(paths) < 2:
        raise DataError(f"MoCo needs at least 2 unlabelled images, found {len(paths)} in "
                        f"{', '.join(map(str, unlabelled_dirs))}")
    resume = _load_resume(last_path, cfg.backbone)
    _seed_everything(general.seed)
    device = select_device(general.device)
    amp = general.mixed_precision and device.type == "cuda"

    encoder, feature_dim, prefix = build_encoder(cfg.backbone)
    init = {"pretrained": cfg.pretrained, "source": "resumed", "transfers": []}
    if not resume:  # before MoCoV3 copies the encoder into its momentum branch
        init = pretrained_encoder(encoder, cfg.backbone, prefix, cfg.pretrained,
                                  weights_dir or Path(general.weights_dir), allow_partial=general.allow_partial_init)
    model = MoCoV3(encoder, feature_dim, cfg.hidden_dim, cfg.projection_dim).to(device)
    batch = min(cfg.batch_size, len(paths))
    peak_lr = cfg.learning_rate * batch / 256  # linear scaling rule: learning_rate is per 256 images
    optimizer = make_optimizer(model, cfg.optimizer, peak_lr, cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    loader = torch.utils.data.DataLoader(
        UnlabelledImages(paths, two_view_transform(cfg.augmentations, cfg.imgsz)), batch_size=batch,
        shuffle=True, drop_last=True, num_workers=general.num_workers, collate_fn=collate_views,
        generator=torch.Generator().manual_seed(general.seed), persistent_workers=general.num_workers > 0,
    )
    steps_per_epoch = len(loader)
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = min(cfg.warmup_epochs * steps_per_epoch, max(0, total_steps - 1))

    # the probe: val crops against a bank of train crops; one pool with leave-one-out only without val
    share = cfg.probe_max_crops // 2 if labelled_val else cfg.probe_max_crops
    crops, crop_labels = labelled_crops(labelled, share, general.seed) if labelled else ([], [])
    queries, query_labels = labelled_crops(labelled_val, share, general.seed) if labelled_val else ([], [])
    use_knn = has_two_classes(crop_labels) and (not labelled_val or bool(query_labels))
    metric_name = "knn_accuracy" if use_knn else "loss"
    log.info("MoCo v3 on %s: %d images, batch %d, %d steps/epoch, device %s%s; best by %s%s",
             cfg.backbone, len(paths), batch, steps_per_epoch, device, " (AMP)" if amp else "", metric_name,
             f" on {len(crops)} labelled crops" if use_knn else " (no labelled crops found)")

    start_epoch, step, history, momentum = 0, 0, [], cfg.momentum_start
    best = {"name": metric_name, "value": None, "epoch": None}
    if resume:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scaler.load_state_dict(resume["scaler"])
        start_epoch, step = int(resume["epoch"]), int(resume["step"])
        history, best = list(resume.get("history", [])), dict(resume.get("best", best))
        torch.set_rng_state(resume["rng"])
        log.info("resuming from %s at epoch %d/%d", last_path, start_epoch, cfg.epochs)

    if start_epoch >= cfg.epochs:
        log.info("%s already holds %d epoch(s) (ssl_pretraining.epochs=%d): nothing to do; raise epochs "
                 "to continue or delete it to start over", last_path, start_epoch, cfg.epochs)
    skipped: set[int] = set()
    train_seconds, train_images = 0.0, 0
    tracker = Tracker(out_dir / "metrics.jsonl", logging_cfg, tb_dir=tb_dir, run_name=f"ssl-{cfg.backbone}",
                      run_config=cfg.model_dump())
    try:
        for epoch in range(start_epoch, cfg.epochs):
            model.train()
            losses = []
            t0 = time.perf_counter()
            for x0, x1, bad in progress(loader, f"ssl epoch {epoch + 1}/{cfg.epochs}"):
                skipped.update(bad)
                if x0 is None or x0.shape[0] < 2:  # BatchNorm and contrast need two images
                    continue
                lr = learning_rate_at(step, total_steps, warmup_steps, peak_lr)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                momentum = cosine_schedule(step, total_steps, cfg.momentum_start, cfg.momentum_end)
                model.update_momentum(momentum)
                x0, x1 = x0.to(device, non_blocking=True), x1.to(device, non_blocking=True)
                with torch.autocast(device.type, enabled=amp):
                    loss = moco_v3_step(model, x0, x1, cfg.temperature)
                if not math.isfinite(loss.item()):
                    raise DataError(f"MoCo loss became {loss.item()} at step {step}: lower "
                                    "ssl_pretraining.learning_rate")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                losses.append(loss.item())
                train_images += x0.shape[0]
                step += 1
            train_seconds += time.perf_counter() - t0
            record = {"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else float("nan"),
                      "lr": optimizer.param_groups[0]["lr"], "momentum": momentum,
                      "skipped_images": len(skipped)}
            if use_knn:
                bank = embed(model.backbone, crops, cfg.imgsz, device)
                if queries:
                    record["knn_accuracy"] = knn_transfer_accuracy(
                        bank, crop_labels, embed(model.backbone, queries, cfg.imgsz, device), query_labels, cfg.knn_k)
                else:
                    record["knn_accuracy"] = knn_accuracy(bank, crop_labels, cfg.knn_k)
            value = record[metric_name]
            improved = best["value"] is None or (value > best["value"] if use_knn else value < best["value"])
            history.append(record)
            encoder_state = {k: v.detach().cpu() for k, v in model.backbone.state_dict().items()}
            common = {"backbone": cfg.backbone, "feature_dim": feature_dim, "encoder": encoder_state,
                      "encoder_prefix": prefix, "epoch": epoch + 1, "config": cfg.model_dump(mode="json"),
                      "init": resume.get("init", init) if resume else init}
            if improved:
                best = {"name": metric_name, "value": value, "epoch": epoch + 1}
                save_checkpoint(best_path, {**common, "metric": best})
            save_checkpoint(last_path, {
                **common, "metric": {"name": metric_name, "value": value, "epoch": epoch + 1},
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "step": step, "best": best, "history": history, "rng": torch.get_rng_state(),
            })
            tracker.log({k: v for k, v in record.items() if v is not None}, step=epoch + 1)
            log.info("epoch %d/%d: loss %.4f%s%s", epoch + 1, cfg.epochs, record["loss"],
                     f", kNN acc {record['knn_accuracy']:.3f}" if use_knn else "", " (best)" if improved else "")
    finally:
        tracker.close()
    if skipped:
        log.warning("skipped %d unreadable image(s), e.g. %s", len(skipped), paths[min(skipped)])
    if not best_path.is_file():
        raise DataError("no training step ran: every batch was unreadable")
    ips = train_images / train_seconds if train_seconds else 0.0
    return SSLResult(best_path, last_path, cfg.backbone, len(paths), len(skipped), len(history), best, ips,
                     history)
