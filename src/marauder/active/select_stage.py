"""`marauder active-learn`: score the unlabelled pool with the baseline and export an annotation package."""

from __future__ import annotations

import csv
import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config.sections.stages import ActiveLearningConfig
from ..errors import DataError, MissingInputError
from ..fsio import atomic_write_json
from ..log import get_logger, progress
from ..workspace import SPLITS, Workspace
from .guidelines import example_crops
from .ledger import LedgerRow, append_ledger, sent_hashes
from .package import PackageInfo, archive_copy, write_package
from .pool import PoolStats, hashes_of, iter_batches, list_pool
from .scoring import image_score
from .selection import Candidate, TopCandidates, select

log = get_logger("active")


@dataclass(frozen=True)
class ActiveLearningResult:
    package: PackageInfo
    stats: PoolStats
    scores_csv: Path
    summary: Path
    seconds: float


def ledger_path(workspace: Workspace) -> Path:
    return workspace.selection_ledger


def packages_dir(workspace: Workspace) -> Path:
    return workspace.stage_outputs("active-learn") / "packages"


def labelled_image_dirs(workspace: Workspace) -> list[Path]:
    """Images that already have labels: the organised dataset and earlier imports."""
    return [workspace.organized_images(s) for s in SPLITS] + [workspace.annotated_dir / "images"]


def make_package_id(hashes: list[str], now: float) -> str:
    digest = hashlib.sha256("".join(sorted(hashes)).encode()).hexdigest()[:8]
    return f"pkg-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}-{digest}"


def zero_detection_quota(cfg: ActiveLearningConfig) -> int:
    """How many of the package's images are reserved for frames where the model found nothing."""
    return int(round(cfg.num_samples * cfg.zero_detection_share))


def score_pool(cfg: ActiveLearningConfig, predictor, entries, exclude: set[str], capacity: int,
               scores_out, stats: PoolStats) -> tuple[TopCandidates, TopCandidates]:
    """Run the model over the pool batch by batch; write every score to CSV. Returns the top `capacity`
    frames with a detection, and a seeded random sample of frames without one (zero_detection_quota)."""
    from ..engines.ultralytics.predict import predict_detailed
    from .scoring import random_score

    top = TopCandidates(capacity)
    # all num_samples: past the quota they fill a package that frames with detections cannot
    empty = TopCandidates(cfg.num_samples if zero_detection_quota(cfg) else 0)
    writer = csv.writer(scores_out, lineterminator="\n")
    writer.writerow(["file", "source", "sha256", "score", "n_boxes", "max_confidence"])
    nc = len(predictor.class_names)
    bar_total = (len(entries) + cfg.batch_size - 1) // cfg.batch_size
    for _consumed, batch in progress(iter_batches(entries, cfg.batch_size, exclude, stats),
                                     "scoring pool (batches)", total=bar_total):
        if not batch:
            continue
        dets_list = predict_detailed(predictor, [b.image for b in batch])
        for item, dets in zip(batch, dets_list):
            score = image_score(cfg.strategy, dets, nc, min_confidence=cfg.min_confidence,
                                max_confidence=cfg.max_confidence, sha256=item.sha256, seed=cfg.seed)
            emb = dets.extra.get("embedding")
            kept = dets.filter(cfg.pre_annotation_confidence)  # all the package needs; bounds memory
            kept.extra.clear()
            embedding = None if emb is None else np.asarray(emb, dtype=np.float32)
            if len(dets) or not empty.capacity:
                top.offer(Candidate(str(item.path), item.source, item.sha256, score, kept, embedding))
            else:  # ranked by a content-seeded random number: a fair sample of the model's blind spots
                empty.offer(Candidate(str(item.path), item.source, item.sha256, 0.0, kept, embedding,
                                      {"rank": random_score(item.sha256, cfg.seed), "zero_detection": True}))
            writer.writerow([str(item.path), item.source, item.sha256, f"{score:.6f}", len(dets),
                             f"{float(dets.scores.max()) if len(dets) else 0.0:.6f}"])
            stats.scored += 1
    return top, empty


def pick_package(scored: list[Candidate], blind_spots: list[Candidate], cfg: ActiveLearningConfig) -> list[Candidate]:
    """zero_detection_quota frames without detections (in their seeded random order), the rest by score
    (and diversity); when too few frames have detections, more blind spots fill the package."""
    blind_spots = sorted(blind_spots, key=lambda c: c.extra["rank"])
    quota = min(zero_detection_quota(cfg), len(blind_spots))
    selected = select(scored, cfg.num_samples - quota, cfg.diversity)
    return selected + blind_spots[:cfg.num_samples - len(selected)]


def run_active_learning(cfg: ActiveLearningConfig, workspace: Workspace, *, extra_pool_dirs: list[str] = (),
                        imgsz: int = 640, device: str | None = None) -> ActiveLearningResult:
    from ..engines.ultralytics.predict import UltralyticsPredictor

    start = time.perf_counter()
    model_path = workspace.path(cfg.model)
    if not model_path.is_file():
        raise MissingInputError(model_path, "marauder train-baseline")
    folders = [(d, workspace.path(d)) for d in [*cfg.pool_dirs, *extra_pool_dirs]]
    entries = list_pool(folders)
    if not entries:
        raise DataError("no images in the unlabelled pool folders: "
                        + ", ".join(str(p) for _, p in folders)
                        + " (set active_learning.pool_dirs or data.extra_unlabelled_dirs)")
    out_dir = workspace.stage_outputs("active-learn")
    exclude = sent_hashes(ledger_path(workspace)) | hashes_of(labelled_image_dirs(workspace))
    log.info("pool: %d images in %d folders; %d known images excluded by content hash",
             len(entries), len(folders), len(exclude))

    predictor = UltralyticsPredictor(model_path, imgsz=cfg.imgsz or imgsz, conf=min(0.01, cfg.min_confidence),
                                     device=device, batch=cfg.batch_size)
    capacity = int(round(cfg.num_samples * (cfg.candidate_factor if cfg.diversity else 1.0)))
    stats = PoolStats()
    scores_csv = out_dir / "scores.csv"
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".scores.csv.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            top, empty = score_pool(cfg, predictor, entries, exclude, capacity, fh, stats)
        os.replace(tmp, scores_csv)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if not len(top) and not len(empty):
        raise DataError(f"nothing left to select: all {stats.listed} pool images are already labelled, "
                        "already sent in an earlier package, duplicates or unreadable")
    selected = pick_package(top.best_first(), empty.best_first(), cfg)
    log.info("selected %d images: %d by %s, %d with no detection at all (zero_detection_share %.2f)",
             len(selected), len(selected) - sum(1 for c in selected if c.extra.get("zero_detection")), cfg.strategy,
             sum(1 for c in selected if c.extra.get("zero_detection")), cfg.zero_detection_share)

    now = time.time()
    package_id = make_package_id([c.sha256 for c in selected], now)
    crops = example_crops(predictor.class_names, workspace.organized_images("train"),
                          workspace.organized_labels("train"))
    metadata = {"created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "strategy": cfg.strategy,
                "diversity": cfg.diversity, "model": str(model_path), "pool_scored": stats.scored,
                "min_confidence": cfg.min_confidence, "max_confidence": cfg.max_confidence}
    package = write_package(workspace.annotation_package, package_id, selected, predictor.class_names,
                            crops=crops, pre_annotation_confidence=cfg.pre_annotation_confidence,
                            thumbnail_size=cfg.thumbnail_size, metadata=metadata, relative_to=workspace.root)
    archive_copy(package.path, packages_dir(workspace), package_id)
    append_ledger(ledger_path(workspace), [
        LedgerRow(e.sha256, package_id, e.image_id, e.file, e.source, metadata["created_at"])
        for e in package.entries
    ])
    seconds = time.perf_counter() - start
    summary = atomic_write_json(out_dir / "selection.json", {
        **metadata, "package_id": package_id, "package": str(package.path), "selected": len(selected),
        "pool": {"listed": stats.listed, "scored": stats.scored, "excluded": stats.excluded,
                 "duplicates": stats.duplicates, "unreadable": stats.unreadable},
        "score_of_selected": {"min": min(c.score for c in selected), "max": max(c.score for c in selected)},
        "zero_detection_selected": sum(1 for c in selected if c.extra.get("zero_detection")),
        "seconds": round(seconds, 2),
    })
    log.info("package %s: %d images, %d pre-annotations -> %s", package_id, len(package.entries),
             package.n_pre_annotations, package.path)
    return ActiveLearningResult(package, stats, scores_csv, summary, seconds)
