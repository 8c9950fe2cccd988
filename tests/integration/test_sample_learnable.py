"""The embedded sample is learnable: a yolov8n trained from scratch on it for a few CPU minutes
finds the species on dives it never saw.

Settings: 160 frames (seed 0), split 0.6/0.2/0.2 by dive, yolov8n from its yaml (no pretrained
weights), imgsz 96, batch 16, 30 epochs, AdamW lr0 0.004 without warm-up (a few hundred steps do
not afford Ultralytics' 100-step minimum warm-up), mosaic on until the last 5 epochs.
Measured 2026-11-27 (1 thread on 2 CPU cores shared with other jobs, load ~9; torch 2.14.1 CPU,
ultralytics 8.4.190): val mAP50 0.274, test mAP50 0.235 (untrained: 0.0), 163 s of training.
"""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.slow

# Figures from the run recorded in the foundation report; the assertions leave room for
# run-to-run and machine-to-machine drift while staying far above an untrained model (0.0).
MEASURED = {"val_map50": 0.274, "test_map50": 0.235, "train_seconds": 163.2}
MIN_VAL_MAP50 = 0.15
MIN_TEST_MAP50 = 0.10


def test_tiny_yolo_learns_the_sample(tmp_path_factory):
    from marauder.data.organize import organize_dataset
    from marauder.data.sample import generate_sample
    from marauder.engines.ultralytics.models import load_yolo
    from marauder.engines.ultralytics.train import train_detector

    root = tmp_path_factory.mktemp("learnable")
    generate_sample(root / "sample", seed=0, n_images=160, n_unlabelled=0)
    organized = root / "organized"
    organize_dataset(root / "sample/images", root / "sample/labels", organized, split=(0.6, 0.2, 0.2),
                     seed=0, group_by=r"dive([0-9]+)_", show_progress=False)
    start = time.perf_counter()
    result = train_detector(
        "yolov8n.yaml", organized / "dataset.yaml", root / "run", epochs=30, imgsz=96, batch=16,
        device="cpu", workers=0, amp=False,
        overrides={"optimizer": "AdamW", "lr0": 0.004, "warmup_epochs": 0, "close_mosaic": 5},
    )
    seconds = time.perf_counter() - start
    val_map50 = float(result.metrics["metrics/mAP50(B)"])
    test = load_yolo(result.best).val(data=str(organized / "dataset.yaml"), split="test", imgsz=96, batch=16,
                                      device="cpu", workers=0, plots=False, verbose=False,
                                      project=str(root), name="test_eval")
    test_map50 = float(test.box.map50)
    figures = {"val_map50": round(val_map50, 3), "test_map50": round(test_map50, 3),
               "train_seconds": round(seconds, 1)}
    print("sample learnability:", json.dumps(figures))
    assert val_map50 >= MIN_VAL_MAP50, figures
    assert test_map50 >= MIN_TEST_MAP50, figures
