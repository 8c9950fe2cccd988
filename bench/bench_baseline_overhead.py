"""Our wrapper must cost nothing: `marauder train-baseline` vs Ultralytics' own `yolo train`.

Same model (yolov8n from yaml), data (deepfish-det split by habitat), epochs, seed, image size, batch,
learning rate, warm-up and accumulation (nbs = batch: no accumulation, as gradient_accumulation_steps=1).
Both run as fresh processes, alternating, twice each; the faster of each pair is compared (the machine
is shared, so the minimum is the least noisy estimate). Final val metrics must match.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_ssl_ablation import habitat_split  # noqa: E402
from common import SHARED_DATA, row, write_result  # noqa: E402

EPOCHS, IMGSZ, BATCH, SEED, LR, WARMUP = 3, 160, 16, 0, 0.01, 1
VENV_BIN = Path(sys.executable).parent


def _last_metrics(results_csv: Path) -> dict:
    with results_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    last = {k.strip(): v for k, v in rows[-1].items()}
    return {k: round(float(last[k]), 5) for k in ("metrics/mAP50(B)", "metrics/mAP50-95(B)")}


def run_ours(ws: Path, data_yaml: Path) -> tuple[float, dict]:
    shutil.rmtree(ws / "runs", ignore_errors=True)
    shutil.rmtree(ws / "checkpoints", ignore_errors=True)
    cmd = [str(VENV_BIN / "marauder"), "train-baseline", "--workspace", str(ws),
           "baseline_yolo.model_size=yolov8n", "baseline_yolo.use_ssl_backbone=false", f"baseline_yolo.data={data_yaml}",
           f"baseline_yolo.epochs={EPOCHS}", f"baseline_yolo.imgsz={IMGSZ}", f"baseline_yolo.batch_size={BATCH}",
           f"baseline_yolo.learning_rate={LR}", f"baseline_yolo.warmup_epochs={WARMUP}", "baseline_yolo.patience=100",
           "general.device=cpu", "general.num_workers=0", f"general.seed={SEED}", "general.mixed_precision=false"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0, _last_metrics(ws / "runs" / "baseline" / "results.csv")


def run_peer(ws: Path, data_yaml: Path) -> tuple[float, dict]:
    project = ws / "peer_runs"
    shutil.rmtree(project, ignore_errors=True)
    cmd = [str(VENV_BIN / "yolo"), "train", "model=yolov8n.yaml", f"data={data_yaml}", f"epochs={EPOCHS}",
           f"imgsz={IMGSZ}", f"batch={BATCH}", f"lr0={LR}", f"warmup_epochs={WARMUP}", "patience=100",
           "optimizer=SGD", f"nbs={BATCH}", "device=cpu", "workers=0", f"seed={SEED}", "deterministic=True",
           "amp=False", "plots=False", "verbose=False", "save_period=-1", "cache=False", f"project={project}",
           "name=peer", "exist_ok=True"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ws)
    return time.perf_counter() - t0, _last_metrics(project / "peer" / "results.csv")


def main() -> int:
    if not SHARED_DATA.is_dir():
        print(f"skipped: {SHARED_DATA} is absent")
        return 0
    env_note = os.environ.get("OMP_NUM_THREADS", "unset")
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        data_yaml = habitat_split(ws / "data" / "organized")
        ours_t, peer_t = [], []
        for _ in range(2):
            t, ours_m = run_ours(ws, data_yaml)
            ours_t.append(t)
            print(f"marauder train-baseline: {t:.1f}s {ours_m}", flush=True)
            t, peer_m = run_peer(ws, data_yaml)
            peer_t.append(t)
            print(f"yolo train: {t:.1f}s {peer_m}", flush=True)
    ours, peer = min(ours_t), min(peer_t)
    same = ours_m == peer_m
    notes = (f"yolov8n.yaml, deepfish-det habitat split, {EPOCHS} epochs @ {IMGSZ}px, batch {BATCH}, CPU; "
             f"runs ours={[round(t, 1) for t in ours_t]} peer={[round(t, 1) for t in peer_t]}; "
             f"OMP_NUM_THREADS={env_note}")
    rows = [
        row("wall time (min of 2)", round(ours, 2), round(peer, 2), "yolo train (Ultralytics CLI)", units="s",
            target="ratio <= 1.03", notes=notes, higher_is_better=False),
        row("final mAP50", ours_m["metrics/mAP50(B)"], peer_m["metrics/mAP50(B)"], "yolo train",
            notes="identical" if same else "DIFFERENT"),
        row("final mAP50-95", ours_m["metrics/mAP50-95(B)"], peer_m["metrics/mAP50-95(B)"], "yolo train"),
    ]
    write_result("baseline_overhead", "marauder train-baseline vs yolo train: wall time and metrics", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
