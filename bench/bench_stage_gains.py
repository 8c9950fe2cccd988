"""What each stage adds on real data, with 95% bootstrap intervals over test images.

Data: ../shared/data/underwater-det (critical: starfish, stingray) and ../shared/data/deepfish-det
(grouped by habitat), the CPU recipe (config/cpu.yaml), from the reference models of
bench_real_data.py ("Pretrained features"): when that bench's last run matches today's data, config
and code, its workspace is reused as is; otherwise this bench runs the same `marauder pipeline` first
and stores the reference for next time. Each ablation's models are kept under the same key, so a
second run with unchanged data, config and code only predicts and bootstraps.

Rows build on each other; each is one model (or pipeline) evaluated on the test split with our
evaluator, and its delta is to the row it builds on, paired over the same bootstrap draws of test
images (`marauder.evaluate.bootstrap.paired_bootstrap`):

  no SSL              the baseline stage with the ImageNet backbone only (ablation: train-baseline)
  + SSL               the pipeline's baseline (MoCo v3 pass, then the same baseline recipe)
  + oversampling      train-critical with mining off, same epochs (ablation)
  + mining            the pipeline's critical-species model (oversampling + one mining round)
  best member         the best ensemble variant on test (optimistic for the member)
  ensemble            the variants fused with WBF, no TTA; also vs one model trained for the same
                      total epochs (ablation: one variant for the variants' summed epochs)
  multi-scale         the multi-scale variants fused (the pipeline's deployed members); AP_small shown
  + TTA               the calibrated pipeline's views (hflip), uncalibrated scores at operating_conf
  + calibration       the calibrated pipeline with its per-class thresholds; ECE before/after

Active learning (side experiment, same labelling budget): half the train split is held back as an
unlabelled pool whose labels are the answer key (the simulated vendor). A baseline trained on the
other half picks `active_learning.num_samples` images with the active-learning stage's own scoring
and selection; a seeded random draw picks as many. Each set is "labelled" from the answer key and the
half-data model is fine-tuned on seed + picked for 2 epochs; both are evaluated on test.

  python bench/bench_stage_gains.py [--dataset underwater-det|deepfish-det|all] [--resamples N] [--quick]

Writes bench/out/stage_gains.json, bench/out/stage_gains.md, bench/out/stage_gains.html and
docs/images/stage_gains.png (mAP50 with its 95% interval along the chain).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import bench_real_data as real  # noqa: E402
from common import SHARED_DATA, row, write_result  # noqa: E402

WORK = HERE / "work" / "stage_gains"
QUICK_WORK = HERE / "work" / "stage_gains_quick"
PLOT = REPO / "docs" / "images" / "stage_gains.png"
RESAMPLES = 300
FINE_TUNE_EPOCHS = 2  # active-learning fine-tunes


# ----------------------------------------------------------------------------------------------
# The reference chain: bench_real_data's workspace when current, else our own pipeline run
# ----------------------------------------------------------------------------------------------
def all_done(state: dict) -> bool:
    needed = ("ssl-pretrain", "train-baseline", "train-critical", "train-ensemble", "train-multiscale", "calibrate")
    return all(state.get(s, {}).get("status") == "done" for s in needed)


def reference_workspace(spec, quick: bool, log) -> tuple[object, dict, str]:
    """(workspace, pipeline state, where it came from)."""
    from marauder.workspace import Workspace

    key = real.reference_key(spec.name, quick)
    meta = real.REFERENCE_DIR / key / "meta.json"
    if meta.is_file():
        ws = Workspace.at(json.loads(meta.read_text())["workspace"])
        state = real.read_state(ws)
        if all_done(state) and ws.pipeline_config.is_file():
            return ws, state, f"reused {ws.root} (reference {key})"
    ws = real.prepare_workspace(work_dir(quick) / spec.name / "chain", spec, quick=quick)
    inputs = real.key_inputs(spec.name, quick)
    log(f"no current reference: marauder pipeline in {ws.root}")
    rc, _wall, state = real.run_pipeline(ws, spec, real.pipeline_overrides(spec, quick))
    if rc != 0 or not all_done(state):
        raise RuntimeError(f"pipeline exit {rc}; see {ws.root / 'bench_logs' / 'pipeline.log'}")
    real.store_reference(ws, spec, inputs, {"source": "bench_stage_gains"})
    return ws, state, f"ran the pipeline in {ws.root}"


def work_dir(quick: bool) -> Path:
    return QUICK_WORK if quick else WORK


def run_marauder(command: str, ws_root: Path, overrides: list[str], log_name: str) -> float:
    """One `marauder <command>` in its own workspace; returns its wall seconds (raises on failure)."""
    logs = ws_root / "bench_logs"
    logs.mkdir(parents=True, exist_ok=True)
    cmd = [*real.tool("marauder"), command, "--config", str(real.config_path()), "--workspace", str(ws_root),
           *overrides]
    start = time.perf_counter()
    with (logs / f"{log_name}.log").open("w") as fh:
        rc = subprocess.call(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd[1:3])} exit {rc}:\n{real.tail(logs / f'{log_name}.log')}")
    return time.perf_counter() - start


def cached(root: Path, key: dict, build):
    """An ablation's result (model paths as strings, seconds), reused when its folder holds one made
    for the same key (the reference chain's data, config and code); else built afresh and recorded."""
    from marauder.fsio import atomic_write_json

    marker = root / "bench_result.json"
    want = json.dumps(key, sort_keys=True)
    if marker.is_file():
        doc = json.loads(marker.read_text())
        if doc.get("key") == want:
            print(f"  reused {root} (same reference chain)", flush=True)
            return doc["result"]
    result = _plain(build())
    atomic_write_json(marker, {"key": want, "result": result})
    return result


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


# ----------------------------------------------------------------------------------------------
# Ablations (each in its own workspace under bench/work/stage_gains/<dataset>/)
# ----------------------------------------------------------------------------------------------
def baseline_without_ssl(ws, spec, base: list[str], work: Path) -> tuple[Path, float]:
    root = fresh(work / spec.name / "no_ssl")
    seconds = run_marauder("train-baseline", root, [*base, f"baseline_yolo.data={ws.dataset_yaml}",
                                                    "baseline_yolo.use_ssl_backbone=false",
                                                    "ssl_pretraining.enabled=false"], "train_baseline")
    return root / "checkpoints" / "baseline" / "best.pt", seconds


def oversampling_only(ws, spec, base: list[str], cfg, work: Path) -> tuple[Path, float]:
    root = fresh(work / spec.name / "oversampling_only")
    hnm = cfg.critical_species.hard_negative_mining
    epochs = hnm.iterations * hnm.epochs_per_iteration if hnm.enabled else (cfg.critical_species.epochs or 1)
    seconds = run_marauder("train-critical", root, [
        *base, f"critical_species.base_model={ws.baseline_best}", f"critical_species.data={ws.dataset_yaml}",
        "critical_species.hard_negative_mining.enabled=false", f"critical_species.epochs={epochs}"], "train_critical")
    return root / "checkpoints" / "critical_species" / "best.pt", seconds


def total_epochs(cfg) -> int:
    """The ensemble's epochs summed over its variants: what one model gets for the same training."""
    return sum(v.epochs or cfg.ensemble.epochs for v in cfg.ensemble.variants.values())


def one_model_same_epochs(ws, spec, base: list[str], cfg, work: Path) -> tuple[Path, float]:
    root = fresh(work / spec.name / "same_epochs")
    name = "balanced" if "balanced" in cfg.ensemble.variants else next(iter(cfg.ensemble.variants))
    variant = cfg.ensemble.variants[name].model_dump(mode="json")
    variant["epochs"] = total_epochs(cfg)
    seconds = run_marauder("train-ensemble", root, [
        *base, f"ensemble.base_model={ws.critical_best}", f"ensemble.data={ws.dataset_yaml}",
        f"ensemble.variants={json.dumps({name: variant})}", "ensemble.fusion.weights=null"], "train_ensemble")
    return root / "checkpoints" / "ensemble" / name / "best.pt", seconds


def active_learning_vs_random(ws, spec, base: list[str], cfg, work: Path, epochs: int, log) -> dict:
    """Half the train split held back as the pool; the seed half trains a baseline; AL vs random picks."""
    from marauder.active.scoring import image_score
    from marauder.active.select_stage import pick_package, zero_detection_quota
    from marauder.active.selection import Candidate
    from marauder.data.dataset import iter_split, load_dataset_yaml
    from marauder.engines.ultralytics.predict import UltralyticsPredictor, predict_detailed
    from marauder.engines.ultralytics.train import train_detector
    from marauder.fsio import sha256_file
    from marauder.train.oversample import write_derived_dataset

    root = fresh(work / spec.name / "active_learning")
    dspec = load_dataset_yaml(ws.dataset_yaml)
    train = sorted(str(p) for p, _ in iter_split(dspec, "train"))
    rng = random.Random(0)
    pool = sorted(rng.sample(train, len(train) // 2))
    seed_half = sorted(set(train) - set(pool))
    k = min(cfg.active_learning.num_samples, len(pool) // 2)
    seed_yaml = write_derived_dataset(dspec, root / "seed", seed_half)
    start = time.perf_counter()
    run_marauder("train-baseline", root / "ws", [*base, f"baseline_yolo.data={seed_yaml}",
                                                 f"baseline_yolo.ssl_checkpoint={ws.ssl_best}"], "train_baseline")
    seed_model = root / "ws" / "checkpoints" / "baseline" / "best.pt"
    seed_seconds = time.perf_counter() - start

    import cv2

    al = cfg.active_learning
    imgsz = al.imgsz or cfg.general.imgsz
    predictor = UltralyticsPredictor(seed_model, imgsz=imgsz, conf=0.001, device="cpu")
    scored, blind = [], []
    t0 = time.perf_counter()
    for path in pool:
        dets = predict_detailed(predictor, [cv2.imread(path)])[0]
        sha = sha256_file(path)
        score = image_score(al.strategy, dets, len(dspec.names), min_confidence=al.min_confidence,
                            max_confidence=al.max_confidence, sha256=sha, seed=al.seed)
        emb = dets.extra.get("embedding")
        cand = Candidate(path, "pool", sha, score, dets, None if emb is None else np.asarray(emb, np.float32))
        if len(dets) or not zero_detection_quota(al):
            scored.append(cand)
        else:
            blind.append(Candidate(path, "pool", sha, 0.0, dets, cand.embedding,
                                   {"rank": rng.random(), "zero_detection": True}))
    picked = [c.path for c in pick_package(sorted(scored, key=lambda c: -c.score), blind,
                                           al.model_copy(update={"num_samples": k}))]
    select_seconds = time.perf_counter() - t0
    random_pick = random.Random(1).sample(pool, k)
    log(f"active learning: {len(seed_half)} seed images, pool {len(pool)}, {k} picked "
        f"({sum(p in random_pick for p in picked)} also in the random pick)")

    out = {"seed_images": len(seed_half), "pool": len(pool), "budget": k, "seed_model": seed_model,
           "seed_seconds": seed_seconds, "select_seconds": select_seconds}
    args = dict(cfg.critical_species.train_args)
    for name, chosen in (("active", picked), ("random", random_pick)):
        data = write_derived_dataset(dspec, root / name, [*seed_half, *chosen])  # labels: the answer key
        t0 = time.perf_counter()
        result = train_detector(seed_model, data, root / "runs" / name, epochs=epochs, imgsz=imgsz,
                                batch=cfg.critical_species.batch_size, device="cpu", workers=0,
                                seed=cfg.general.seed, amp=False, deterministic=True, overrides=args)
        out[name] = {"model": result.best, "seconds": time.perf_counter() - t0}
    return out


# ----------------------------------------------------------------------------------------------
# Test-split predictions and metrics
# ----------------------------------------------------------------------------------------------
class TestSet:
    def __init__(self, ws):
        import cv2

        from marauder.data.dataset import iter_split, load_dataset_yaml, read_ground_truth

        spec = load_dataset_yaml(ws.dataset_yaml)
        self.names = list(spec.names)
        pairs = list(iter_split(spec, "test"))
        self.images = [cv2.imread(str(p)) for p, _ in pairs]
        self.truth = [read_ground_truth(p, lbl, num_classes=len(self.names), size=im.shape[:2])
                      for (p, lbl), im in zip(pairs, self.images)]

    def predict(self, predictor, batch: int = 16) -> list:
        out = []
        for start in range(0, len(self.images), batch):
            out += predictor.predict(self.images[start:start + batch])
        return out


def model_predictor(path: Path, imgsz: int):
    from marauder.infer.pipeline_predictor import load_member

    return load_member(path, imgsz=imgsz, conf=0.001, iou=0.6, device="cpu", batch=16)


def fused_predictor(paths: list[Path], imgsz: int, fusion):
    from marauder.infer.pipeline_predictor import build_pipeline

    return build_pipeline([model_predictor(p, imgsz) for p in paths], None, fusion, [p.parent.name for p in paths])


def metrics(preds, test: TestSet, critical: tuple[str, ...], thresholds) -> dict:
    from marauder.evaluate.calibration import reliability
    from marauder.evaluate.coco import coco_metrics
    from marauder.evaluate.operating import operating_point

    nc = len(test.names)
    coco = coco_metrics(preds, test.truth, nc, return_matches=True)
    op = operating_point(coco["matches"], [g.counted for g in test.truth], nc, thresholds)
    m = coco["matches"]
    recall = {c: (float(op.recall[test.names.index(c)]) if c in test.names else None) for c in critical}
    return {"mAP50": coco["mAP50"], "mAP50-95": coco["mAP50-95"],
            "AP_small": None if coco["AP_small"] < 0 else coco["AP_small"],
            "recall": recall, "ece": reliability(m["det_score"], m["matched"][0, 0])["ece"]}


def map50_fn(nc: int):
    from marauder.evaluate.coco import coco_metrics

    def map50(preds, truth):
        value = coco_metrics(preds, truth, nc)["mAP50"]
        return value if value >= 0 else float("nan")

    return map50


def recall_fn(class_id: int, threshold: float):
    def recall(preds, truth):
        from marauder.types import box_iou

        tp = gt = 0
        for d, g in zip(preds, truth):  # greedy at IoU 0.5, as the operating point
            keep = (d.class_ids == class_id) & (d.scores >= threshold)
            boxes, scores = d.xyxy[keep], d.scores[keep]
            solo = (g.class_ids == class_id) & ~g.iscrowd
            gt += int(solo.sum())
            if not solo.any() or not len(boxes):
                continue
            iou = box_iou(boxes[np.argsort(-scores, kind="stable")], g.xyxy[solo])
            taken = np.zeros(iou.shape[1], bool)
            for r in iou:
                j = int(np.argmax(np.where(taken, -1, r)))
                if not taken[j] and r[j] >= 0.5:
                    taken[j] = True
                    tp += 1
        return tp / gt if gt else float("nan")

    return recall


# ----------------------------------------------------------------------------------------------
# One dataset
# ----------------------------------------------------------------------------------------------
def run_dataset(spec, resamples: int, quick: bool = False) -> dict:
    from marauder.config.loader import load_config
    from marauder.evaluate.bootstrap import paired_bootstrap

    def log(msg):
        print(f"[{spec.name}] {msg}", flush=True)

    base = real.pipeline_overrides(spec, quick)
    cfg = load_config(real.config_path(), base)
    ws, state, origin = reference_workspace(spec, quick, log)
    work = work_dir(quick)
    tune_epochs = 1 if quick else FINE_TUNE_EPOCHS
    log(origin)
    secs = {name: rec.get("seconds") for name, rec in state.items()}
    test = TestSet(ws)
    imgsz = cfg.evaluation.imgsz or cfg.general.imgsz
    op_conf = cfg.evaluation.operating_conf
    flat = np.full(len(test.names), op_conf)
    variants = list(cfg.ensemble.variants)

    key = {"reference": real.reference_key(spec.name, quick), "chain": str(ws.root), "epochs": tune_epochs}
    log("ablation: baseline without SSL")
    no_ssl, no_ssl_s = cached(work / spec.name / "no_ssl", key, lambda: baseline_without_ssl(ws, spec, base, work))
    log("ablation: oversampling without mining")
    over, over_s = cached(work / spec.name / "oversampling_only", key,
                          lambda: oversampling_only(ws, spec, base, cfg, work))
    log("ablation: one model for the ensemble's total epochs")
    same, same_s = cached(work / spec.name / "same_epochs", key,
                          lambda: one_model_same_epochs(ws, spec, base, cfg, work))
    log("side experiment: active learning vs random at the same labelling budget")
    al = cached(work / spec.name / "active_learning", key,
                lambda: active_learning_vs_random(ws, spec, base, cfg, work, tune_epochs, log))

    from marauder.infer.pipeline_predictor import PipelinePredictor

    pipeline_tta = PipelinePredictor(ws.pipeline_config, tta=True, calibrate=False, device="cpu")
    pipeline_cal = PipelinePredictor(ws.pipeline_config, tta=True, calibrate=True, device="cpu")
    members = [ws.ensemble_dir(v) / "best.pt" for v in variants]
    multiscale = [ws.checkpoints("ensemble") / f"{v}_multiscale" / "best.pt" for v in variants]
    fusion = cfg.tta_calibration.fusion

    log("predicting the test split with every model")
    preds = {
        "no SSL": test.predict(model_predictor(no_ssl, imgsz)),
        "+ SSL (baseline)": test.predict(model_predictor(ws.baseline_best, imgsz)),
        "+ oversampling": test.predict(model_predictor(over, imgsz)),
        "+ mining (critical species)": test.predict(model_predictor(ws.critical_best, imgsz)),
        "ensemble (3 fused, no TTA)": test.predict(fused_predictor(members, imgsz, fusion)),
        "one model, same total epochs": test.predict(model_predictor(same, imgsz)),
        "multi-scale (3 fused)": test.predict(fused_predictor(multiscale, imgsz, fusion)),
        "+ TTA": test.predict(pipeline_tta),
        "+ calibration": test.predict(pipeline_cal),
        "AL: seed half only": test.predict(model_predictor(al["seed_model"], imgsz)),
        "AL: + actively picked": test.predict(model_predictor(al["active"]["model"], imgsz)),
        "AL: + randomly picked": test.predict(model_predictor(al["random"]["model"], imgsz)),
    }
    member_preds = {v: test.predict(model_predictor(p, imgsz)) for v, p in zip(variants, members)}
    map50 = map50_fn(len(test.names))
    best_member = max(variants, key=lambda v: map50(member_preds[v], test.truth))
    preds["best ensemble member"] = member_preds[best_member]

    thresholds = {name: flat for name in preds}
    thresholds["+ calibration"] = pipeline_cal.thresholds.astype(np.float64)
    ens_s = secs.get("train-ensemble")
    plan = [  # (row, builds on, wall seconds it cost, how)
        ("no SSL", None, no_ssl_s, "train-baseline, ImageNet EfficientNet-Lite0 start, no MoCo"),
        ("+ SSL (baseline)", "no SSL", _sum(secs.get("ssl-pretrain"), secs.get("train-baseline")),
         "pipeline: ssl-pretrain + train-baseline"),
        ("+ oversampling", "+ SSL (baseline)", over_s, "train-critical, mining off, same epochs"),
        ("+ mining (critical species)", "+ oversampling", secs.get("train-critical"), "pipeline: train-critical"),
        ("best ensemble member", "+ mining (critical species)", ens_s and ens_s / len(variants),
         f"{best_member} (best of {len(variants)} on test: optimistic)"),
        ("ensemble (3 fused, no TTA)", "best ensemble member", ens_s, "pipeline: train-ensemble, WBF"),
        ("one model, same total epochs", "+ mining (critical species)", same_s,
         f"{total_epochs(cfg)} epochs of one variant (the ensemble's peer)"),
        ("multi-scale (3 fused)", "ensemble (3 fused, no TTA)", secs.get("train-multiscale"),
         "pipeline: train-multiscale (one more epoch per member)"),
        ("+ TTA", "multi-scale (3 fused)", None, f"views {[v.name for v in pipeline_tta.views]}, "
         f"uncalibrated, operating_conf {op_conf}"),
        ("+ calibration", "+ TTA", secs.get("calibrate"), "pipeline: calibrate (per-class maps and thresholds)"),
        ("AL: seed half only", None, al["seed_seconds"], f"baseline on {al['seed_images']} of the train images"),
        ("AL: + randomly picked", "AL: seed half only", al["random"]["seconds"],
         f"{al['budget']} random images of the {al['pool']} held back, {tune_epochs} epochs"),
        ("AL: + actively picked", "AL: + randomly picked", al["active"]["seconds"] + al["select_seconds"],
         f"{al['budget']} images chosen by the active-learning scoring, {tune_epochs} epochs"),
    ]
    rows = []
    for name, parent, seconds, how in plan:
        log(f"bootstrap: {name}")
        m = metrics(preds[name], test, spec.critical, thresholds[name])
        entry = {"row": name, "builds_on": parent, "seconds": seconds, "how": how, **m}
        ref = parent or name
        d = paired_bootstrap(map50, preds[name], preds[ref], test.truth, resamples, seed=0)
        entry.update(mAP50_ci=d.a_ci, delta_mAP50=d.delta if parent else None,
                     delta_mAP50_ci=d.delta_ci if parent else None, harmful=bool(parent and d.delta_ci[1] < 0))
        entry["delta_recall"] = {}
        for c in spec.critical:
            if c not in test.names or not parent:
                continue
            k = test.names.index(c)
            # each side judged at its own operating threshold
            fa = recall_fn(k, float(thresholds[name][k]))
            fb = recall_fn(k, float(thresholds[parent][k]))
            entry["delta_recall"][c] = _paired_recall(preds[name], preds[parent], test.truth, fa, fb, resamples)
        rows.append(entry)
    ablation_seconds = {"no_ssl": no_ssl_s, "oversampling_only": over_s, "same_epochs": same_s,
                        "active_learning": al["seed_seconds"] + al["select_seconds"] + al["active"]["seconds"]
                        + al["random"]["seconds"]}
    return {"dataset": spec.name, "origin": origin, "workspace": str(ws.root), "test_images": len(test.images),
            "test_boxes": int(sum(len(g.counted) for g in test.truth)), "critical": list(spec.critical),
            "rows": _plain(rows), "ablation_seconds": ablation_seconds, "resamples": resamples}


def _paired_recall(a, b, truth, fa, fb, resamples: int) -> dict:
    """Recall delta with each side at its own threshold, over the same image draws."""
    rng = np.random.default_rng(1)
    n = len(truth)
    draws = []
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        t = [truth[i] for i in idx]
        ra, rb = fa([a[i] for i in idx], t), fb([b[i] for i in idx], t)
        if np.isfinite(ra) and np.isfinite(rb):
            draws.append(ra - rb)
    delta = fa(a, truth) - fb(b, truth)
    ci = [float(v) for v in np.quantile(draws, [0.025, 0.975])] if draws else [None, None]
    return {"delta": None if not np.isfinite(delta) else float(delta), "ci": ci}


def _sum(*values):
    return None if any(v is None for v in values) else float(sum(values))


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


# ----------------------------------------------------------------------------------------------
# Report: table, plot, HTML
# ----------------------------------------------------------------------------------------------
CHAIN = ["no SSL", "+ SSL (baseline)", "+ oversampling", "+ mining (critical species)", "ensemble (3 fused, no TTA)",
         "multi-scale (3 fused)", "+ TTA", "+ calibration"]


def fmt(x, spec=".3f"):
    return "-" if x is None else format(x, spec)


def ci(pair, spec=".3f"):
    return "-" if not pair or pair[0] is None else f"[{format(pair[0], spec)}, {format(pair[1], spec)}]"


def markdown(res: dict) -> str:
    crit = res["critical"]
    head = ("| stage | builds on | mAP50 [95% CI] | mAP50-95 | AP_small | " + " | ".join(f"recall {c}" for c in crit)
            + " | Δ mAP50 [95% CI] | " + " | ".join(f"Δ recall {c} [95% CI]" for c in crit) + " | ECE | s | how |")
    lines = [f"### {res['dataset']} ({res['test_images']} test images, {res['test_boxes']} boxes)", "", head,
             "|" + "---|" * (head.count("|") - 1)]
    for r in res["rows"]:
        rec = r.get("recall") or {}
        drec = r.get("delta_recall") or {}
        delta = "-" if r["delta_mAP50"] is None else f"{r['delta_mAP50']:+.3f} {ci(r['delta_mAP50_ci'], '+.3f')}"
        dr = [("-" if c not in drec or drec[c]["delta"] is None else
               f"{drec[c]['delta']:+.2f} {ci(drec[c]['ci'], '+.2f')}") for c in crit]
        lines.append(f"| {r['row']} | {r['builds_on'] or ''} | {fmt(r['mAP50'])} {ci(r['mAP50_ci'])} | "
                     f"{fmt(r['mAP50-95'])} | {fmt(r['AP_small'])} | " + " | ".join(fmt(rec.get(c), '.2f') for c in crit)
                     + f" | {delta} | " + " | ".join(dr) + f" | {fmt(r['ece'])} | {fmt(r['seconds'], '.0f')} | "
                     f"{r['how']} |")
    lines.append("")
    lines.append(f"Reference chain: {res['origin']}. Ablation wall seconds: "
                 + ", ".join(f"{k} {v:.0f}" for k, v in res["ablation_seconds"].items()) + ".")
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, res in enumerate(results):
        by = {r["row"]: r for r in res["rows"]}
        xs = [k for k, name in enumerate(CHAIN) if name in by]
        ys = [by[CHAIN[k]]["mAP50"] for k in xs]
        lo = [y - (by[CHAIN[k]]["mAP50_ci"][0] or y) for k, y in zip(xs, ys)]
        hi = [(by[CHAIN[k]]["mAP50_ci"][1] or y) - y for k, y in zip(xs, ys)]
        ax.errorbar(np.array(xs) + 0.08 * (i - 0.5), ys, yerr=[lo, hi], marker="o", capsize=3, label=res["dataset"])
    ax.set_xticks(range(len(CHAIN)))
    ax.set_xticklabels(CHAIN, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("test mAP50 (95% bootstrap CI over images)")
    ax.set_title("What each stage adds (CPU recipe, 2 cores)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _html_table(text: str) -> str:
    """The markdown of `markdown()` as HTML: headings, one table, paragraphs."""
    import html as html_lib

    out, in_table = [], False
    for line in text.splitlines():
        cells = [html_lib.escape(c.strip()) for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and set(line) <= set("|-"):
            continue
        if line.startswith("|"):
            tag = "th" if not in_table else "td"
            out.append(("<table>" if not in_table else "") + "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells)
                       + "</tr>")
            in_table = True
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.startswith("### "):
            out.append(f"<h3>{html_lib.escape(line[4:])}</h3>")
        elif line.strip():
            out.append(f"<p>{html_lib.escape(line)}</p>")
    return "\n".join(out + (["</table>"] if in_table else []))


def html(results: list[dict], png: Path) -> str:
    import base64

    body = "\n".join(_html_table(markdown(r)) for r in results)
    img = base64.b64encode(png.read_bytes()).decode()
    return (f"<!doctype html><meta charset='utf-8'><title>Marauder stage gains</title>"
            f"<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;font-size:12px}}"
            f"td,th{{border:1px solid #ccc;padding:3px 6px}}</style><h1>What each stage adds</h1>"
            f"<img src='data:image/png;base64,{img}' alt='mAP50 along the chain'>{body}")


def headline(res: dict) -> list[dict]:
    out = []
    by = {r["row"]: r for r in res["rows"]}
    for r in res["rows"]:
        if r["builds_on"] is None:
            continue
        peer = by[r["builds_on"]]
        out.append(row(f"{res['dataset']}: {r['row']} vs {r['builds_on']} test mAP50", r["mAP50"], peer["mAP50"],
                       r["builds_on"], notes=f"delta {fmt(r['delta_mAP50'], '+.3f')} "
                                              f"95% CI {ci(r['delta_mAP50_ci'], '+.3f')}; {r['how']}"))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=[*real.DATASETS, "all"], default="all")
    parser.add_argument("--resamples", type=int, default=RESAMPLES)
    parser.add_argument("--quick", action="store_true", help="smoke run: bench_real_data's --quick settings, "
                        "20 resamples, results in bench/work/stage_gains_quick/")
    args = parser.parse_args()
    if args.quick:
        args.resamples = min(args.resamples, 20)
    names = list(real.DATASETS) if args.dataset == "all" else [args.dataset]
    missing = [n for n in [*names, "underwater-unlabelled"] if not (SHARED_DATA / n).is_dir()]
    if missing:
        print(f"skipped: {', '.join(missing)} not in {SHARED_DATA}")
        return 0
    results, rows = [], []
    for name in names:
        start = time.perf_counter()
        res = run_dataset(real.DATASETS[name], args.resamples, args.quick)
        res["bench_seconds"] = round(time.perf_counter() - start, 1)
        results.append(res)
        rows += headline(res)
    png = QUICK_WORK / "stage_gains.png" if args.quick else PLOT
    plot(results, png)
    out = write_result("stage_gains", "Each stage's gain on real data, 95% bootstrap CI over test images", rows,
                       {"datasets": results, "plot": str(png), "quick": args.quick},
                       out_dir=QUICK_WORK if args.quick else None)
    text = "\n\n".join(markdown(r) for r in results)
    out.with_suffix(".md").write_text(text + "\n")
    out.with_suffix(".html").write_text(html(results, png))
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
