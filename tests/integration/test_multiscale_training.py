"""Multi-scale training for real, tiny: every batch at a listed resolution; <name>_multiscale outputs."""

from __future__ import annotations

import json
import shutil
from collections import Counter

from marauder.config.sections.general import GeneralConfig
from marauder.config.sections.stages import MultiscaleTrainingConfig


def test_every_batch_is_trained_at_a_configured_resolution(organized_sample, tiny_model, tmp_path):
    from marauder.engines.ultralytics.multiscale import RESOLUTION_LOG, make_trainer
    from marauder.engines.ultralytics.train import train_detector

    configured = [32, 64]
    seen: list[tuple[int, int]] = []

    class Recording(make_trainer(resolutions=configured)):
        """Records what the model is actually fed, after our resize."""

        def preprocess_batch(self, batch):
            batch = super().preprocess_batch(batch)
            seen.append(tuple(batch["img"].shape[2:]))
            return batch

    result = train_detector(tiny_model, organized_sample / "dataset.yaml", tmp_path / "run", epochs=1,
                            imgsz=max(configured), batch=4, device="cpu", workers=0, amp=False, trainer=Recording)
    assert result.best.is_file()
    assert len(seen) >= 10
    assert {h for h, w in seen} | {w for h, w in seen} <= set(configured)  # every side is a listed size
    assert all(h == w for h, w in seen)  # square training batches stay square
    assert {h for h, _ in seen} == set(configured)  # the draw covers the list (seeded, 10+ batches)
    log = json.loads((result.run_dir / RESOLUTION_LOG).read_text())
    assert log["configured"] == configured
    assert log["batches_per_resolution"] == {str(k): v for k, v in sorted(Counter(h for h, _ in seen).items())}


def test_run_multiscale_writes_beside_the_original_and_compares(organized_sample, tiny_model, tmp_path):
    from marauder.train.ensemble import STATE_FILE
    from marauder.train.multiscale import run_multiscale
    from marauder.workspace import Workspace

    ws = Workspace.at(tmp_path / "ws")
    source = ws.ensemble_dir("tiny") / "best.pt"
    source.parent.mkdir(parents=True)
    shutil.copy2(tiny_model, source)
    cfg = MultiscaleTrainingConfig(resolutions=[32, 64], epochs=1, batch_size=8,
                                   data=str(organized_sample / "dataset.yaml"))
    general = GeneralConfig(device="cpu", mixed_precision=False, num_workers=0, imgsz=64)

    result = run_multiscale(cfg, general, ws, output_dir=tmp_path / "out")
    out_dir = ws.checkpoints("ensemble") / "tiny_multiscale"
    assert [m.name for m in result.models] == ["tiny_multiscale"]
    assert (out_dir / "best.pt").is_file() and (out_dir / "last.pt").is_file()
    spec = json.loads((out_dir / STATE_FILE).read_text())["spec"]
    assert spec["resolutions"] == [32, 64] and spec["augmentation"]["scale"] == 0.5
    (row,) = result.comparison
    assert row["model"] == "tiny" and row["imgsz"] == 64 and row["split"] == "val"
    for side in ("before", "after"):
        assert set(row[side]) == {"mAP50-95", "mAP50", "AP_small", "AP_medium", "AP_large"}
        assert row[side]["mAP50-95"] is not None and 0 <= row[side]["mAP50-95"] <= 1
    saved = json.loads((tmp_path / "out" / "multiscale_comparison.json").read_text())
    assert saved["rows"][0]["before"] == row["before"]

    again = run_multiscale(cfg, general, ws, evaluate=False)  # the output is not itself a source
    assert [m.status for m in again.models] == ["skipped"] and again.sources == [source]
