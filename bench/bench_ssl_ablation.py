"""Does MoCo v3 pretraining help the baseline on real underwater frames?

1. MoCo v3 on ../shared/data/underwater-unlabelled + the deepfish-det training images (labels unused).
2. The baseline detector on deepfish-det split by habitat (train / val / test habitats disjoint),
   once from the SSL backbone and once from scratch, same architecture, epochs, seed.
3. mAP50 and mAP50-95 of both on the test habitats (Ultralytics' own validator).

CPU-sized (yolov8n, small images, few epochs): the numbers say whether the plumbing transfers
something, not what a full GPU run would reach.
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("YOLO_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, row, write_result  # noqa: E402

SEED = 0
SSL_EPOCHS, SSL_IMGSZ, SSL_BATCH, SSL_MAX_IMAGES = 2, 64, 64, 768
DET_EPOCHS, DET_IMGSZ, DET_BATCH = 5, 160, 16
TEST_HABITATS = ("9866", "9908")
VAL_HABITATS = ("7426", "9852")


def habitat_split(out: Path, test=TEST_HABITATS, val=VAL_HABITATS) -> Path:
    """deepfish-det as data/organized (symlinks), split by habitat so no habitat leaks across splits."""
    src = SHARED_DATA / "deepfish-det"
    with (src / "source_map.csv").open() as fh:
        habitats = {r["file_name"]: r["habitat"] for r in csv.DictReader(fh)}
    for name, habitat in habitats.items():
        split = "test" if habitat in test else "val" if habitat in val else "train"
        for kind, suffix in (("images", ".jpg"), ("labels", ".txt")):
            folder = out / kind / split
            folder.mkdir(parents=True, exist_ok=True)
            target = src / kind / (Path(name).stem + suffix)
            if target.exists():
                (folder / target.name).symlink_to(target)
    names = (src / "classes.txt").read_text().split()
    (out / "dataset.yaml").write_text(
        f"path: {out}\ntrain: images/train\nval: images/val\ntest: images/test\nnames: {names}\n")
    return out / "dataset.yaml"


def main() -> int:
    if not SHARED_DATA.is_dir():
        print(f"skipped: {SHARED_DATA} is absent")
        return 0
    from marauder.config.sections.general import CheckpointingConfig, GeneralConfig, LoggingConfig
    from marauder.config.sections.training import BaselineYoloConfig, SSLPretrainingConfig
    from marauder.engines.ultralytics.train import validate_detector
    from marauder.ssl import run_ssl_pretrain
    from marauder.train.baseline import run_baseline
    from marauder.workspace import Workspace

    general = GeneralConfig(device="cpu", num_workers=0, seed=SEED, mixed_precision=False, imgsz=DET_IMGSZ)
    quiet = LoggingConfig(tensorboard=False)
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.at(tmp)
        data_yaml = habitat_split(ws.organized_dir)
        t0 = time.perf_counter()
        ssl_cfg = SSLPretrainingConfig(backbone="yolov8n", epochs=SSL_EPOCHS, batch_size=SSL_BATCH, imgsz=SSL_IMGSZ,
                                       learning_rate=0.3, warmup_epochs=1, hidden_dim=1024, projection_dim=128,
                                       max_images=SSL_MAX_IMAGES, probe_max_crops=256)
        ssl = run_ssl_pretrain(
            ssl_cfg, general, ws.checkpoints("ssl"),
            [SHARED_DATA / "underwater-unlabelled" / "images", ws.organized_images("train")],
            labelled=[(ws.organized_images("val"), ws.organized_labels("val"))], logging_cfg=quiet)
        ssl_seconds = time.perf_counter() - t0
        print(f"SSL: {ssl.images} images, {ssl.epochs_trained} epochs, best {ssl.best_metric}, {ssl_seconds:.0f}s",
              flush=True)

        results = {}
        for label, use_ssl in (("ssl", True), ("scratch", False)):
            run_ws = Workspace.at(Path(tmp) / label)
            cfg = BaselineYoloConfig(model_size="yolov8n", use_ssl_backbone=use_ssl, ssl_checkpoint=str(ssl.best),
                                     data=str(data_yaml), epochs=DET_EPOCHS, batch_size=DET_BATCH,
                                     imgsz=DET_IMGSZ, warmup_epochs=1, patience=DET_EPOCHS)
            t0 = time.perf_counter()
            res = run_baseline(cfg, general, run_ws, checkpointing=CheckpointingConfig(), logging_cfg=quiet)
            seconds = time.perf_counter() - t0
            test = validate_detector(res.best, data_yaml, split="test", imgsz=DET_IMGSZ, device="cpu")
            results[label] = {**test, "seconds": seconds, "ssl_tensors_loaded": res.ssl_tensors_loaded}
            print(label, results[label], flush=True)

    ours, peer = results["ssl"], results["scratch"]
    notes = (f"deepfish-det, test habitats {','.join(TEST_HABITATS)}; yolov8n {DET_EPOCHS} epochs @ {DET_IMGSZ}px, "
             f"seed {SEED}; SSL {SSL_EPOCHS} epochs @ {SSL_IMGSZ}px on {ssl.images} images "
             f"({ssl.skipped_images} unreadable), {ours['ssl_tensors_loaded']} backbone tensors loaded")
    rows = [
        row("test mAP50", round(ours["metrics/mAP50(B)"], 4), round(peer["metrics/mAP50(B)"], 4),
            "same baseline from scratch", notes=notes),
        row("test mAP50-95", round(ours["metrics/mAP50-95(B)"], 4), round(peer["metrics/mAP50-95(B)"], 4),
            "same baseline from scratch"),
        row("SSL pretraining time", round(ssl_seconds, 1), units="s", higher_is_better=False,
            notes=f"best epoch by {ssl.best_metric['name']} = {ssl.best_metric['value']}"),
    ]
    write_result("ssl_ablation", "MoCo v3 SSL backbone vs from-scratch baseline on habitat-split deepfish-det",
                 rows, extra={"runs": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
