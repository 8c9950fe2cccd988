"""Critical-species specialisation on real aquarium photos: does oversampling (+ mining) help the rare classes?

Data: ../shared/data/underwater-det (220 photos, 7 classes), split by the source's own split
(train 147 / valid 43 / test 30). Critical species: its two rarest classes, stingray and starfish.
Protocol (the pipeline's order): one shared base model, yolov8n from its yaml (no pretrained
weights), trained BASE_EPOCHS plain epochs. From it, three specialisations through the same stage code
(`run_critical_species`), each with EPOCHS more epochs in total:
  plain            oversampling off, mining off (the peer: just more training)
  oversampling     critical images 3x in the training list
  oversampling+HNM oversampling and hard negative mining, 2 iterations x EPOCHS/2 epochs
Reported on the test split with our evaluator: mAP50 and, per critical class, recall at the operating
threshold (0.25) and AP50. "Same total epochs" means the same number of passes over the (derived)
training list: the oversampled list is longer, so those variants take more steps; seconds are reported.
One seed, tiny CPU models, few epochs: absolute numbers are low and noisy; report as measured.
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import SHARED_DATA, Timer, row, write_result  # noqa: E402

IMGSZ = int(os.environ.get("BENCH_CRIT_IMGSZ", 128))
BASE_EPOCHS = int(os.environ.get("BENCH_CRIT_BASE_EPOCHS", 16))
EPOCHS = int(os.environ.get("BENCH_CRIT_EPOCHS", 4))  # per specialisation, in total
CRITICAL = os.environ.get("BENCH_CRIT_SPECIES", "stingray,starfish").split(",")
BATCH = 16
# a few hundred steps cannot afford Ultralytics' 100-step minimum warm-up (see test_sample_learnable)
BASE_HYP = {"optimizer": "AdamW", "lr0": 0.004, "warmup_epochs": 0, "close_mosaic": 2}
FINETUNE_HYP = {"optimizer": "AdamW", "lr0": 0.001, "warmup_epochs": 0, "close_mosaic": 0}
SPLIT_OF = {"train": "train", "valid": "val", "test": "test"}


def build_dataset(work: Path, root: Path) -> Path:
    """organized layout (images/<split>, labels/<split>) of symlinked images and copied labels."""
    for r in csv.DictReader((root / "source_map.csv").open()):
        split = SPLIT_OF[r["original_split"]]
        (work / "images" / split).mkdir(parents=True, exist_ok=True)
        (work / "labels" / split).mkdir(parents=True, exist_ok=True)
        os.symlink(root / "images" / r["file_name"], work / "images" / split / r["file_name"])
        label = root / "labels" / f"{Path(r['file_name']).stem}.txt"
        if label.is_file():
            shutil.copy(label, work / "labels" / split / label.name)
    names = (root / "classes.txt").read_text().split()
    yaml_path = work / "dataset.yaml"
    yaml_path.write_text(f"path: {work}\ntrain: images/train\nval: images/val\ntest: images/test\n"
                         f"names: {names}\n")
    return yaml_path


def main() -> None:
    from marauder.config.sections.general import GeneralConfig, LoggingConfig
    from marauder.config.sections.stages import CriticalSpeciesConfig
    from marauder.engines.ultralytics.train import train_detector
    from marauder.evaluate.runner import evaluate_model
    from marauder.train.critical import run_critical_species
    from marauder.workspace import Workspace

    root = SHARED_DATA / "underwater-det"
    if not root.is_dir():
        print(f"skip: {root} not found")
        return
    work = Path(tempfile.mkdtemp(prefix="bench_critical_"))
    data = build_dataset(work / "data", root)
    general = GeneralConfig(seed=0, device="cpu", mixed_precision=False, num_workers=0, imgsz=IMGSZ)
    quiet = LoggingConfig(tensorboard=False, wandb={"enabled": False, "mode": "disabled"})
    with Timer() as t_base:
        base = train_detector("yolov8n.yaml", data, work / "base", epochs=BASE_EPOCHS, imgsz=IMGSZ, batch=BATCH,
                              device="cpu", workers=0, seed=0, amp=False, overrides=BASE_HYP).best
    results, rows = {}, []
    variants = {
        "plain": dict(oversampling={"enabled": False}, hard_negative_mining={"enabled": False}),
        "oversampling": dict(oversampling={"enabled": True, "critical_species_ratio": 3.0},
                             hard_negative_mining={"enabled": False}),
        "oversampling+mining": dict(
            oversampling={"enabled": True, "critical_species_ratio": 3.0},
            hard_negative_mining={"enabled": True, "iterations": 2, "epochs_per_iteration": max(1, EPOCHS // 2),
                                  "confidence": 0.05, "review_confidence": 0.8}),
    }
    for name, options in variants.items():
        cfg = CriticalSpeciesConfig(species=CRITICAL, base_model=str(base), data=str(data), epochs=EPOCHS,
                                    min_recall=0.0, batch_size=BATCH, train_args=FINETUNE_HYP, **options)
        ws = Workspace.at(work / name)
        with Timer() as t:
            result = run_critical_species(cfg, general, ws, logging_cfg=quiet)
        report = evaluate_model(result.best, data, split="test", imgsz=IMGSZ, critical_species=CRITICAL,
                                operating_conf=0.25, bootstrap=0, worst_examples=0, device="cpu")
        s = report.summary
        results[name] = {
            "mAP50": s["mAP50"], "seconds": round(t.seconds, 1),
            "train_entries": [r["train_entries"] for r in result.iterations],
            "negatives_added": sum(r["negatives_added"] for r in result.iterations),
            "sent_for_review": sum(r["sent_for_review"] for r in result.iterations),
            "recall": {c: s["critical_recall"][c]["recall"] for c in CRITICAL},
            "AP50": {c: s["per_class"][c]["AP50"] for c in CRITICAL},
            "support": {c: s["critical_recall"][c]["support"] for c in CRITICAL},
        }
        print(name, results[name], flush=True)
    peer = results["plain"]
    for name in ("oversampling", "oversampling+mining"):
        ours = results[name]
        rows.append(row(f"test mAP50, {name}", ours["mAP50"], peer["mAP50"], "plain (same epochs)"))
        for c in CRITICAL:
            rows.append(row(f"test recall@0.25 {c}, {name}", ours["recall"][c], peer["recall"][c],
                            "plain (same epochs)", notes=f"{ours['support'][c]} test boxes"))
            rows.append(row(f"test AP50 {c}, {name}", ours["AP50"][c], peer["AP50"][c], "plain (same epochs)"))
        rows.append(row(f"stage seconds, {name}", ours["seconds"], peer["seconds"], "plain (same epochs)",
                        units="s", higher_is_better=False))
    write_result("critical_species", __doc__.splitlines()[0], rows,
                 {"settings": {"imgsz": IMGSZ, "base_epochs": BASE_EPOCHS, "epochs": EPOCHS, "critical": CRITICAL,
                               "base_seconds": round(t_base.seconds, 1)},
                  "variants": results})
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
