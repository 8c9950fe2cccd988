"""Ultralytics trainer callbacks: mirror checkpoints into checkpoints/<stage>/ and track metrics.

They run after each epoch in the training process, so a killed run still leaves the latest
last.pt / best.pt / metrics.jsonl in the stage's checkpoint folder.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ...train.common import Tracker, prune_checkpoints, write_jsonl


def copy_atomic(src: Path, dest: Path) -> None:
    """Copy via a unique temp file in dest's folder and rename: a kill never leaves a torn checkpoint."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copy2(src, tmp)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def results_rows(results_csv: Path) -> list[dict]:
    """Ultralytics' results.csv (one row per epoch, kept across resume) as a list of dicts."""
    if not results_csv.is_file():
        return []
    rows = []
    with results_csv.open(newline="") as fh:
        for raw in csv.DictReader(fh):
            row = {}
            for k, v in raw.items():
                key = k.strip()
                try:
                    row[key] = int(v) if key == "epoch" else float(v)
                except (TypeError, ValueError):
                    row[key] = v
            rows.append(row)
    return rows


def mirror_checkpoints(dest: Path, *, save_best_only: bool, keep_last_n: int) -> Callable:
    """on_model_save: copy best.pt when it changed, last.pt (unless save_best_only) and epoch snapshots
    (checkpointing.save_period), keeping the newest keep_last_n snapshots in both folders."""
    dest = Path(dest)
    seen: dict[str, int] = {}

    def on_model_save(trainer) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        wdir = Path(trainer.wdir)
        names = ["best.pt"] if save_best_only else ["best.pt", "last.pt"]
        if not save_best_only:
            names += [p.name for p in wdir.glob("epoch*.pt")]
        for name in names:
            src = wdir / name
            if src.is_file() and seen.get(name) != src.stat().st_mtime_ns:
                copy_atomic(src, dest / name)
                seen[name] = src.stat().st_mtime_ns
        prune_checkpoints(wdir, keep_last_n)
        prune_checkpoints(dest, keep_last_n)

    return on_model_save


def track_epochs(tracker: Tracker, jsonl: Path) -> Callable:
    """on_fit_epoch_end: send the epoch's losses/metrics/LR to the tracker; rewrite metrics.jsonl from
    results.csv (so a resumed run's file has each epoch exactly once)."""

    def on_fit_epoch_end(trainer) -> None:
        metrics = {**trainer.label_loss_items(trainer.tloss, prefix="train"), **(trainer.metrics or {}),
                   **(trainer.lr or {})}
        tracker.log(metrics, step=trainer.epoch + 1)
        rows = results_rows(Path(trainer.csv))
        if rows:
            write_jsonl(jsonl, rows)

    return on_fit_epoch_end
