"""Active learning on real underwater data: scoring speed, and does uncertainty beat random?

1. On ../shared/data/deepfish-det, split by habitat: the first habitats (sorted) are the test set,
   the rest are the training side. A small random seed set is "labelled"; the rest is the pool.
2. A tiny yolov8n baseline is trained from scratch on the seed set (CPU, small imgsz, few epochs).
3. Pool scoring throughput: our `score_pool` (streaming loader + SHA-256 + inference with per-box class
   scores and backbone embeddings + entropy scores + top-k keeping + scores.csv) vs plain batched
   `UltralyticsPredictor.predict` on the same images (read with OpenCV), same model, same run.
   Target: >= 0.8 of plain inference. Best of two interleaved runs each (the CPU is shared).
4. Selection with the same budget: entropy + k-center diversity (ours) vs random (peer), both through
   the same `score_pool` + `select` code; each arm fine-tunes the baseline the same way on
   seed + picks; mAP50 on the held-out habitats (COCO-style, our evaluator).
One seed, tiny models, few epochs: absolute mAPs are low and a single run is noisy; read it as a
smoke-level comparison, not a verdict.
"""

from __future__ import annotations

import io
import os
import random
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import SHARED_DATA, Timer, link_labelled_set, row, write_result  # noqa: E402

IMGSZ = int(os.environ.get("BENCH_AL_IMGSZ", 192))
SEED_IMAGES = int(os.environ.get("BENCH_AL_SEED", 24))
BUDGET = int(os.environ.get("BENCH_AL_BUDGET", 24))
BASE_EPOCHS = int(os.environ.get("BENCH_AL_BASE_EPOCHS", 20))
RETRAIN_EPOCHS = int(os.environ.get("BENCH_AL_RETRAIN_EPOCHS", 8))
TEST_HABITATS = 4
THROUGHPUT_IMAGES = int(os.environ.get("BENCH_AL_TP_IMAGES", 128))
BATCH = 16  # inference
TRAIN_BATCH = 4  # with nbs=4: an optimizer step every 4 images (tiny sets need steps, not big batches)


def sig(x: float) -> float:
    """3 significant digits: near-zero mAPs must not print as a flat 0.0."""
    return float(f"{x:.3g}")


def habitat_split(root: Path) -> tuple[list[Path], list[Path]]:
    import csv

    habitat = {r["file_name"]: r["habitat"] for r in csv.DictReader((root / "source_map.csv").open())}
    habitats = sorted(set(habitat.values()))
    test_h = set(habitats[:TEST_HABITATS])
    images = sorted((root / "images").glob("*.jpg"))
    return ([p for p in images if habitat[p.name] not in test_h], [p for p in images if habitat[p.name] in test_h])


def data_yaml(work: Path, name: str, train: list[Path], test: list[Path]) -> Path:
    (work / f"{name}_train.txt").write_text("".join(f"{p}\n" for p in train))
    (work / "test.txt").write_text("".join(f"{p}\n" for p in test))
    y = work / f"{name}.yaml"
    y.write_text(f"path: {work}\ntrain: {name}_train.txt\nval: test.txt\nnames:\n  0: fish\n")
    return y


def train(work: Path, name: str, init: str, data: Path, epochs: int) -> Path:
    from marauder.engines.ultralytics.train import train_detector

    r = train_detector(init, data, work / "runs" / name, epochs=epochs, imgsz=IMGSZ, batch=TRAIN_BATCH,
                       device="cpu", workers=0, amp=False, seed=0,
                       overrides={"val": False, "warmup_epochs": 0, "plots": False, "nbs": TRAIN_BATCH,
                                  "mosaic": 0.0, "optimizer": "AdamW", "lr0": 0.003})
    return r.last


def evaluate(weights: Path, test: list[Path]) -> dict:
    import cv2

    from marauder.engines.ultralytics.predict import UltralyticsPredictor
    from marauder.evaluate.coco import coco_metrics
    from marauder.formats.yolo import read_labels, rows_to_ground_truth

    pred = UltralyticsPredictor(weights, imgsz=IMGSZ, conf=0.001, iou=0.6, device="cpu", batch=BATCH)
    images = [cv2.imread(str(p)) for p in test]
    dets = pred.predict(images)
    gts = [rows_to_ground_truth(read_labels(p.parent.parent / "labels" / f"{p.stem}.txt"), im.shape[:2])
           for p, im in zip(test, images)]
    m = coco_metrics(dets, gts, 1)
    return {"map50": float(m["mAP50"]), "ar100": float(m["AR100"])}


def score_and_select(predictor, pool: list[Path], strategy: str, diversity: bool):
    from marauder.active.pool import PoolStats
    from marauder.active.select_stage import score_pool
    from marauder.active.selection import select
    from marauder.config.sections.stages import ActiveLearningConfig

    cfg = ActiveLearningConfig(strategy=strategy, num_samples=BUDGET, diversity=diversity, batch_size=BATCH)
    cap = int(BUDGET * (cfg.candidate_factor if diversity else 1))
    stats = PoolStats()
    top = score_pool(cfg, predictor, [("pool", p) for p in pool], set(), cap, io.StringIO(), stats)
    return select(top.best_first(), BUDGET, diversity), stats


def throughput(predictor, paths: list[Path]) -> tuple[float, float]:
    """(ours, plain) images/s, best of two interleaved runs."""
    import cv2

    from marauder.active.pool import PoolStats
    from marauder.active.select_stage import score_pool
    from marauder.config.sections.stages import ActiveLearningConfig

    cfg = ActiveLearningConfig(strategy="entropy", num_samples=BUDGET, diversity=True, batch_size=BATCH)
    entries = [("pool", p) for p in paths]

    def ours():
        score_pool(cfg, predictor, entries, set(), BUDGET * 3, io.StringIO(), PoolStats())

    def plain():
        for i in range(0, len(paths), BATCH):
            predictor.predict([cv2.imread(str(p)) for p in paths[i:i + BATCH]])

    plain_small = paths[:BATCH]
    predictor.predict([cv2.imread(str(p)) for p in plain_small])  # warm-up
    score_pool(cfg, predictor, entries[:BATCH], set(), 4, io.StringIO(), PoolStats())
    best_ours = best_plain = 0.0
    for _ in range(2):
        with Timer() as t:
            plain()
        best_plain = max(best_plain, len(paths) / t.seconds)
        with Timer() as t:
            ours()
        best_ours = max(best_ours, len(paths) / t.seconds)
    return best_ours, best_plain


def main() -> int:
    root = SHARED_DATA / "deepfish-det"
    pool_root = SHARED_DATA / "underwater-unlabelled"
    if not root.is_dir():
        print(f"skipped: {root} is absent")
        return 0
    from marauder.engines.ultralytics.predict import UltralyticsPredictor
    from marauder.fsio import list_images

    with tempfile.TemporaryDirectory(prefix="bench_al_") as tmp, Timer() as total:
        work = Path(tmp)
        images_dir = link_labelled_set(work, root)
        train_side, test_side = habitat_split(root)
        train_side = [images_dir / p.name for p in train_side]
        test = [images_dir / p.name for p in test_side]
        rng = random.Random(0)
        seed = sorted(rng.sample(train_side, SEED_IMAGES))
        pool = [p for p in train_side if p not in set(seed)]

        with Timer() as t_base:
            base = train(work, "baseline", "yolov8n", data_yaml(work, "baseline", seed, test), BASE_EPOCHS)
        base_eval = evaluate(base, test)
        predictor = UltralyticsPredictor(base, imgsz=IMGSZ, conf=0.01, device="cpu", batch=BATCH)

        tp_paths = (list_images(pool_root, recursive=True) if pool_root.is_dir() else pool)[:THROUGHPUT_IMAGES]
        ours_ips, plain_ips = throughput(predictor, tp_paths)

        arms = {}
        for arm, strategy, diversity in (("uncertainty", "entropy", True), ("random", "random", False)):
            picked, _stats = score_and_select(predictor, pool, strategy, diversity)
            picks = [Path(c.path) for c in picked]
            n_boxes = sum(len((images_dir.parent / "labels" / f"{p.stem}.txt").read_text().splitlines())
                          for p in picks)
            with Timer() as t_arm:
                w = train(work, arm, str(base), data_yaml(work, arm, seed + picks, test), RETRAIN_EPOCHS)
            arms[arm] = {**evaluate(w, test), "boxes": n_boxes, "train_s": round(t_arm.seconds, 1),
                         "habitats": len({p.name.split("_")[1] for p in picks})}

    setup = (f"deepfish-det split by habitat: {len(train_side)} train-side / {len(test)} test images "
             f"({TEST_HABITATS} held-out habitats); seed {SEED_IMAGES} labelled, pool {len(pool)}, budget {BUDGET}; "
             f"yolov8n from scratch {BASE_EPOCHS} epochs, then each arm fine-tunes {RETRAIN_EPOCHS} epochs on "
             f"seed+picks at imgsz {IMGSZ} (AdamW 0.003, batch {TRAIN_BATCH}, no mosaic), CPU, one seed")
    u, r = arms["uncertainty"], arms["random"]
    rows = [
        row("pool scoring throughput", round(ours_ips, 2), round(plain_ips, 2), "plain batched inference",
            units="images/s", target=">= 0.8",
            notes=f"{len(tp_paths)} images of {pool_root.name if pool_root.is_dir() else 'the pool'}, imgsz {IMGSZ}, "
                  f"batch {BATCH}; ours = stream+hash+infer(+class scores, embeddings)+entropy+top-k+CSV"),
        row("mAP50 after retraining", sig(u["map50"]), sig(r["map50"]), "random selection",
            notes=f"ours = entropy + k-center diversity; AR100 {u['ar100']:.4f} vs {r['ar100']:.4f}; "
                  f"boxes acquired {u['boxes']} vs {r['boxes']}; "
                  f"habitats covered {u['habitats']} vs {r['habitats']}. {setup}"),
        row("baseline mAP50 (seed set only)", sig(base_eval["map50"]),
            notes=f"AR100 {base_eval['ar100']:.4f}; trained in {t_base.seconds:.0f}s"),
    ]
    write_result("active_learning", "active learning: pool scoring speed and uncertainty vs random selection",
                 rows, {"seconds": round(total.seconds, 1), "arms": arms})
    return 0


if __name__ == "__main__":
    sys.exit(main())
