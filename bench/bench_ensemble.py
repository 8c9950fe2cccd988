"""Ensemble and multi-scale training on real small-fish frames: do they pay for themselves?

Data: ../shared/data/deepfish-det (360x202 reef/mangrove frames, one class `fish`, many small boxes),
split by habitat so near-duplicate frames never cross splits: the first 4 habitats (sorted) are the
test set, the next 2 the val set (used only to pick the "best single variant"), the rest train.

1. Ensemble: `run_ensemble` trains the three configured variants (high_recall / balanced /
   high_precision augmentations and thresholds) for E epochs each, from scratch (no hub weights).
   On the test habitats: each variant, their WBF fusion (each member's threshold first, as
   deployed) and WBF without member thresholds. Peer: the best single variant (picked on val)
   trained for 3E epochs, i.e. the same total epochs as the ensemble.
2. Multi-scale: the balanced variant fine-tuned M more epochs with batches drawn from a resolution
   list vs the same fine-tune at one fixed size (same start, same epochs, same code path).
Metrics: COCO mAP50-95 and AP_small (boxes under 32x32 px in the original frame) from our evaluator.
One seed, tiny models, CPU, few epochs: absolute numbers are low and noisy; report as measured.
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
from common import SHARED_DATA, Timer, link_labelled_set, row, write_result  # noqa: E402

IMGSZ = int(os.environ.get("BENCH_ENS_IMGSZ", 160))
EPOCHS = int(os.environ.get("BENCH_ENS_EPOCHS", 3))  # per variant; the single-model peer gets 3x
MS_EPOCHS = int(os.environ.get("BENCH_ENS_MS_EPOCHS", 2))
RESOLUTIONS = [int(r) for r in os.environ.get("BENCH_ENS_RESOLUTIONS", "96,128,160,192,224").split(",")]
BATCH = 8
TEST_HABITATS, VAL_HABITATS = 4, 2
# small data, few iterations: a short warm-up, or the learning rate never leaves the ramp
HYP = {"warmup_epochs": 1.0}


def habitat_splits(root: Path) -> dict[str, list[Path]]:
    habitat = {r["file_name"]: r["habitat"] for r in csv.DictReader((root / "source_map.csv").open())}
    order = sorted(set(habitat.values()))
    test_h, val_h = set(order[:TEST_HABITATS]), set(order[TEST_HABITATS:TEST_HABITATS + VAL_HABITATS])
    images = sorted((root / "images").glob("*.jpg"))
    return {"test": [p for p in images if habitat[p.name] in test_h],
            "val": [p for p in images if habitat[p.name] in val_h],
            "train": [p for p in images if habitat[p.name] not in test_h | val_h]}


def build_dataset(work: Path, root: Path, splits: dict[str, list[Path]]) -> Path:
    """Symlinked images + copied labels (Ultralytics finds labels beside images/), split list files."""
    images = link_labelled_set(work, root)
    for split, paths in splits.items():
        (work / f"{split}.txt").write_text("".join(f"{images / p.name}\n" for p in paths))
    y = work / "dataset.yaml"
    y.write_text(f"path: {work}\ntrain: train.txt\nval: val.txt\ntest: test.txt\nnames:\n  0: fish\n")
    return y


def small_box_share(root: Path, paths: list[Path]) -> tuple[int, int]:
    """(boxes under 32x32 px in the original frame, all boxes) of a split."""
    import cv2

    small = total = 0
    for p in paths:
        h, w = cv2.imread(str(p)).shape[:2]
        for line in (root / "labels" / f"{p.stem}.txt").read_text().split("\n"):
            parts = line.split()
            if len(parts) == 5:
                total += 1
                small += float(parts[3]) * w * float(parts[4]) * h < 32 * 32
    return small, total


def evaluate(path_or_predictor, data: Path, split: str) -> dict:
    from marauder.evaluate.runner import evaluate_model
    from marauder.infer.predictor import load_predictor

    predictor = path_or_predictor
    if isinstance(path_or_predictor, str | Path):
        predictor = load_predictor(path_or_predictor, imgsz=IMGSZ, conf=0.001, device="cpu", batch=16)
    return evaluate_model(predictor, data, split=split, batch=16, bootstrap=0, worst_examples=0).summary


def fmt(x) -> str:
    return "-" if x is None else f"{x:.4f}"


def main() -> int:
    if not SHARED_DATA.is_dir():
        print(f"skipped: {SHARED_DATA} is absent")
        return 0
    from marauder.config.sections.general import GeneralConfig
    from marauder.config.sections.stages import EnsembleConfig, MultiscaleTrainingConfig
    from marauder.train.ensemble import run_ensemble, validate_ensemble
    from marauder.train.multiscale import run_multiscale
    from marauder.workspace import Workspace

    root = SHARED_DATA / "deepfish-det"
    splits = habitat_splits(root)
    work = Path(tempfile.mkdtemp(prefix="bench_ensemble_"))
    data = build_dataset(work, root, splits)
    small, total = small_box_share(root, splits["test"])
    print(f"train {len(splits['train'])} / val {len(splits['val'])} / test {len(splits['test'])} images; "
          f"test boxes {total}, of which small (<32x32 px) {small}", flush=True)
    ws = Workspace.at(work / "ws")
    general = GeneralConfig(device="cpu", mixed_precision=False, num_workers=0, imgsz=IMGSZ, seed=0)
    defaults = EnsembleConfig()
    variants = {n: v.model_copy(update={"augmentation": {**v.augmentation, **HYP}})
                for n, v in defaults.variants.items()}
    cfg = EnsembleConfig(data=str(data), base_model=str(work / "none.pt"), epochs=EPOCHS, batch_size=BATCH,
                         imgsz=IMGSZ, variants=variants)

    with Timer() as t_ens:
        ensemble = run_ensemble(cfg, general, ws)
    print(f"ensemble: 3 x {EPOCHS} epochs in {t_ens.seconds:.0f}s", flush=True)
    with Timer() as t_val:
        on_val = validate_ensemble(ensemble, cfg, split="val", imgsz=IMGSZ)
    members_val = {r["model"]: r["mAP50-95"] or 0.0 for r in on_val["rows"] if r["kind"] == "member"}
    best_name = max(members_val, key=members_val.get)
    with Timer() as t_test:
        on_test = validate_ensemble(ensemble, cfg, split="test", imgsz=IMGSZ, output_dir=work / "out")
    test_rows = {r["model"]: r for r in on_test["rows"]}
    print(on_val["verdict"], "\n", on_test["verdict"], flush=True)

    # the peer: the variant that was best on val, trained for the ensemble's total epochs
    single_cfg = EnsembleConfig(data=str(data), base_model=str(work / "none.pt"), epochs=3 * EPOCHS,
                                batch_size=BATCH, imgsz=IMGSZ, variants={f"{best_name}_x3": variants[best_name]})
    with Timer() as t_single:
        single = run_ensemble(single_cfg, general, ws)
    single_test = evaluate(single.variants[0].best, data, "test")
    print(f"single {best_name} x {3 * EPOCHS} epochs in {t_single.seconds:.0f}s: mAP50-95 "
          f"{fmt(single_test['mAP50-95'])}", flush=True)

    # inference cost: fused ensemble vs one model, same images (val), same run
    from marauder.infer.ensemble_predictor import load_ensemble

    ens_pred = load_ensemble(ensemble.weights, [v.confidence_threshold for v in variants.values()],
                             cfg.fusion, imgsz=IMGSZ, conf=0.001, device="cpu", batch=16)
    ms_ens = evaluate(ens_pred, data, "val")["latency_ms"]
    ms_single = evaluate(single.variants[0].best, data, "val")["latency_ms"]

    # multi-scale vs fixed size, both from the balanced variant, same epochs
    source = ws.ensemble_dir("balanced") / "best.pt"
    arms = {}
    for arm, resolutions in (("multiscale", RESOLUTIONS), ("fixed", [IMGSZ])):
        start = ws.checkpoints("ms_bench") / arm / "best.pt"
        start.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, start)
        shutil.copy2(source.parent / "training.json", start.parent)  # carry the variant's hyperparameters
        ms_cfg = MultiscaleTrainingConfig(resolutions=resolutions, epochs=MS_EPOCHS, batch_size=BATCH,
                                          data=str(data), eval_split="test", scale_variance=0.5)
        with Timer() as t_arm:
            result = run_multiscale(ms_cfg, general, ws, models=[start])
        arms[arm] = {**result.comparison[0], "seconds": t_arm.seconds}
        print(f"{arm} {resolutions}: {MS_EPOCHS} epochs, test mAP50-95 {fmt(arms[arm]['before']['mAP50-95'])} -> "
              f"{fmt(arms[arm]['after']['mAP50-95'])}, AP_small {fmt(arms[arm]['before']['AP_small'])} -> "
              f"{fmt(arms[arm]['after']['AP_small'])}", flush=True)

    ens = test_rows["ensemble (wbf)"]
    raw = test_rows["ensemble (wbf, no member thresholds)"]
    best_member = max((r for r in on_test["rows"] if r["kind"] == "member"), key=lambda r: r["mAP50-95"] or 0)
    where = (f"deepfish-det, habitat split: {len(splits['train'])} train / {len(splits['val'])} val / "
             f"{len(splits['test'])} test images ({total} test boxes, {small} under 32x32 px); yolov8n from "
             f"scratch, CPU, imgsz {IMGSZ}, batch {BATCH}")
    members = "; ".join(f"{n} {fmt(test_rows[n]['mAP50-95'])}/{fmt(test_rows[n]['AP_small'])}" for n in variants)
    rows = [
        row("test mAP50-95: WBF ensemble vs best single variant (same total epochs)", ens["mAP50-95"],
            single_test["mAP50-95"], f"{best_name} x{3 * EPOCHS} epochs",
            notes=f"{where}; variants {EPOCHS} epochs each, peer picked on val ({best_name})"),
        row("test AP_small: WBF ensemble vs best single variant (same total epochs)", ens["AP_small"],
            single_test["AP_small"], f"{best_name} x{3 * EPOCHS} epochs"),
        row("test mAP50-95: WBF ensemble vs its best member", ens["mAP50-95"], best_member["mAP50-95"],
            best_member["model"], notes=f"members mAP50-95/AP_small: {members}"),
        row("test mAP50-95: WBF with member thresholds vs without", ens["mAP50-95"], raw["mAP50-95"],
            "WBF, no member thresholds", notes="thresholds 0.15/0.25/0.4 truncate the PR curve"),
        row("test AP_small: WBF with member thresholds vs without", ens["AP_small"], raw["AP_small"],
            "WBF, no member thresholds"),
        row("ms/image: 3-model ensemble + WBF vs single model", round(ms_ens, 2), round(ms_single, 2),
            "single yolov8n", units="ms", higher_is_better=False, notes=f"{len(splits['val'])} val images, CPU"),
        row("test mAP50-95 after fine-tune: multi-scale vs fixed size", arms["multiscale"]["after"]["mAP50-95"],
            arms["fixed"]["after"]["mAP50-95"], f"fixed {IMGSZ}px",
            notes=f"balanced variant + {MS_EPOCHS} epochs; resolutions {RESOLUTIONS}; start mAP50-95 "
                  f"{fmt(arms['fixed']['before']['mAP50-95'])}"),
        row("test AP_small after fine-tune: multi-scale vs fixed size", arms["multiscale"]["after"]["AP_small"],
            arms["fixed"]["after"]["AP_small"], f"fixed {IMGSZ}px",
            notes=f"start AP_small {fmt(arms['fixed']['before']['AP_small'])}"),
        row("seconds: ensemble training (3 variants) vs single variant x3 epochs", round(t_ens.seconds, 1),
            round(t_single.seconds, 1), "single", units="s", higher_is_better=False,
            notes=f"validation on val+test took {t_val.seconds + t_test.seconds:.0f}s"),
    ]
    write_result("ensemble", "Ensemble (3 variants + WBF) and multi-scale training on deepfish-det small fish",
                 rows, {"test_table": on_test["rows"], "val_table": on_val["rows"], "single": single_test,
                        "multiscale": arms, "settings": {"imgsz": IMGSZ, "epochs": EPOCHS, "ms_epochs": MS_EPOCHS,
                                                         "resolutions": RESOLUTIONS, "batch": BATCH, **HYP}})
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
