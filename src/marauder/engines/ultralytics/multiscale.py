"""Our extensions of Ultralytics' DetectionTrainer: multi-scale from a list, and checkpoint mirroring.

Ultralytics' own `multi_scale=f` draws each batch's size from a continuous range around imgsz.
We need sizes drawn from a configured list (e.g. the resolutions the deployed model will see),
so `MarauderDetectionTrainer.preprocess_batch` resizes each batch to one list member, and switches
Ultralytics' range off. Nothing global is patched: `make_trainer(...)` returns a subclass that
`train_detector(..., trainer=...)` hands to Ultralytics.

Mirroring: after every checkpoint save the trainer copies last.pt/best.pt atomically into our
checkpoint folder (checkpoints/ensemble/<variant>/), so a killed run resumes from there.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from torch import nn
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils import DEFAULT_CFG

from ...fsio import atomic_write_json
from .callbacks import copy_atomic

RESOLUTION_LOG = "multiscale_resolutions.json"


def align_resolutions(resolutions: Sequence[int], stride: int = 32) -> list[int]:
    """Round each size to the nearest stride multiple (at least one stride), sorted, no repeats."""
    aligned = {max(stride, int(round(r / stride)) * stride) for r in resolutions}
    return sorted(aligned)


class MarauderDetectionTrainer(DetectionTrainer):
    """DetectionTrainer with an optional resolution list and an optional checkpoint mirror folder.

    Configure through `make_trainer`; class attributes keep Ultralytics' constructor signature.
    """

    resolutions: tuple[int, ...] = ()
    mirror_dir: Path | None = None

    def __init__(self, cfg=DEFAULT_CFG, overrides=None, _callbacks=None):
        super().__init__(cfg, overrides, _callbacks)
        self.resolution_counts: Counter[int] = Counter()
        if self.resolutions:
            self.args.multi_scale = 0.0  # our list replaces Ultralytics' range
            self._size_rng = random.Random(int(self.args.seed))
            self.add_callback("on_train_end", _write_resolution_log)
        if self.mirror_dir is not None:
            self.add_callback("on_model_save", _mirror_checkpoints)
            self.add_callback("on_train_end", _mirror_checkpoints)  # after final_eval stripped them

    def preprocess_batch(self, batch: dict) -> dict:
        batch = super().preprocess_batch(batch)
        if self.resolutions:
            batch["img"] = self._resize_to_drawn_resolution(batch["img"])
        return batch

    def _resize_to_drawn_resolution(self, imgs):
        stride = max(int(getattr(self, "stride", 32)), 32)
        size = self._size_rng.choice(align_resolutions(self.resolutions, stride))
        scale = size / max(imgs.shape[2:])
        if scale != 1:
            new_shape = [math.ceil(x * scale / stride) * stride for x in imgs.shape[2:]]
            imgs = nn.functional.interpolate(imgs, size=new_shape, mode="bilinear", align_corners=False)
        self.resolution_counts[int(max(imgs.shape[2:]))] += 1
        return imgs


def make_trainer(resolutions: Sequence[int] | None = None, mirror_dir: str | Path | None = None) -> type:
    """A `MarauderDetectionTrainer` subclass bound to these settings (pass as `trainer=`)."""
    attrs = {
        "resolutions": tuple(int(r) for r in resolutions or ()),
        "mirror_dir": Path(mirror_dir) if mirror_dir is not None else None,
    }
    return type("BoundMarauderDetectionTrainer", (MarauderDetectionTrainer,), attrs)


def _mirror_checkpoints(trainer) -> None:
    dest = Path(trainer.mirror_dir)
    dest.mkdir(parents=True, exist_ok=True)
    for src in (trainer.last, trainer.best):
        if Path(src).is_file():
            copy_atomic(Path(src), dest / Path(src).name)


def _write_resolution_log(trainer) -> None:
    atomic_write_json(Path(trainer.save_dir) / RESOLUTION_LOG, {
        "configured": list(trainer.resolutions),
        "batches_per_resolution": {str(k): v for k, v in sorted(trainer.resolution_counts.items())},
    })


def checkpoint_progress(path: str | Path) -> dict:
    """{'epoch': completed epochs, 'epochs': planned, 'finished': bool} of an Ultralytics checkpoint.

    Ultralytics marks a finished run by stripping the optimizer and setting epoch to -1.
    """
    import torch

    ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
    epoch = int(ckpt.get("epoch", -1))
    epochs = int((ckpt.get("train_args") or {}).get("epochs", 0) or 0)
    finished = epoch < 0 or ckpt.get("optimizer") is None
    return {"epoch": epochs if finished else epoch + 1, "epochs": epochs, "finished": finished}
