"""During training the long-lived objects (torch, Ultralytics, the datasets) are out of the cyclic
collector's reach, so its full collections stop rescanning them; after training they are back."""

from __future__ import annotations

import gc


def test_training_runs_with_the_long_lived_objects_frozen(organized_sample, tmp_path):
    from marauder.engines.ultralytics.train import train_detector

    frozen_during = []
    train_detector("yolov8n.yaml", organized_sample / "dataset.yaml", tmp_path / "run", epochs=1, imgsz=32,
                   batch=8, device="cpu", workers=0, amp=False,
                   callbacks={"on_train_epoch_end": [lambda trainer: frozen_during.append(gc.get_freeze_count())]})
    assert frozen_during and frozen_during[0] > 100_000  # torch and Ultralytics alone are ~400k objects
    assert gc.get_freeze_count() == 0
