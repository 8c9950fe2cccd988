"""train-ensemble for real, tiny: two variants, validation table, skip on rerun, a SIGKILL and resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from marauder.cli import main
from marauder.config.sections.general import GeneralConfig
from marauder.config.sections.stages import DeploymentBudget, EnsembleConfig, EnsembleVariant

REPO = Path(__file__).resolve().parents[2]
SAMPLE_CONFIG = REPO / "config" / "sample.yaml"


def tiny_ensemble(data_yaml: Path, base_model: Path) -> EnsembleConfig:
    return EnsembleConfig(
        data=str(data_yaml), base_model=str(base_model), epochs=1, batch_size=8, imgsz=32,
        variants={
            "recall": EnsembleVariant(confidence_threshold=0.15, augmentation={"mosaic": 1.0, "mixup": 0.2}),
            "precise": EnsembleVariant(confidence_threshold=0.4, augmentation={"mosaic": 0.0, "scale": 0.1}),
        },
        budget=DeploymentBudget(imgsz=64),
    )


def test_variants_train_validate_and_are_skipped_on_rerun(organized_sample, tiny_model, tmp_path):
    from marauder.engines.ultralytics.multiscale import checkpoint_progress
    from marauder.train.ensemble import format_table, run_ensemble, validate_ensemble
    from marauder.workspace import Workspace

    ws = Workspace.at(tmp_path / "ws")
    cfg = tiny_ensemble(organized_sample / "dataset.yaml", tiny_model)
    general = GeneralConfig(device="cpu", mixed_precision=False, num_workers=0, imgsz=32)

    result = run_ensemble(cfg, general, ws)
    assert [v.name for v in result.variants] == ["recall", "precise"]
    assert [v.status for v in result.variants] == ["trained", "trained"]
    for name in ("recall", "precise"):
        folder = ws.ensemble_dir(name)
        assert (folder / "best.pt").is_file() and (folder / "last.pt").is_file()
        state = json.loads((folder / "training.json").read_text())
        assert state["status"] == "finished" and state["spec"]["init"] == str(tiny_model)
        assert checkpoint_progress(folder / "best.pt")["finished"]
    assert result.budget["recall"]["params_m"] < 5 and result.budget["recall"]["imgsz"] == 64
    assert json.loads((ws.ensemble_dir("precise") / "training.json").read_text())["spec"]["augmentation"] == {
        "mosaic": 0.0, "scale": 0.1}

    validation = validate_ensemble(result, cfg, split="val", imgsz=32, batch=8, output_dir=tmp_path / "out")
    rows = {r["model"]: r for r in validation["rows"]}
    assert list(rows) == ["recall", "precise", "ensemble (wbf)", "ensemble (wbf, variant thresholds)"]
    assert rows["ensemble (wbf)"]["threshold"] is None  # the verdict's row: the members' own protocol
    assert rows["ensemble (wbf)"]["AR100"] >= rows["ensemble (wbf, variant thresholds)"]["AR100"]
    for r in rows.values():
        assert 0.0 <= r["mAP50-95"] <= 1.0 and 0.0 <= r["mAP50"] <= 1.0
    assert validation["best_member"] in ("recall", "precise")
    assert f"vs best member {validation['best_member']}" in validation["verdict"]
    assert json.loads((tmp_path / "out" / "validation.json").read_text())["rows"] == validation["rows"]
    assert "ensemble (wbf)" in format_table(validation)

    before = {n: (ws.ensemble_dir(n) / "best.pt").stat().st_mtime_ns for n in ("recall", "precise")}
    again = run_ensemble(cfg, general, ws)
    assert [v.status for v in again.variants] == ["skipped", "skipped"]
    assert before == {n: (ws.ensemble_dir(n) / "best.pt").stat().st_mtime_ns for n in ("recall", "precise")}


def _cli_args(ws: Path, data_yaml: Path, epochs: int) -> list[str]:
    return ["train-ensemble", "--workspace", str(ws), "--config", str(SAMPLE_CONFIG), "--variants", "high_recall",
            f"ensemble.data={data_yaml}", f"ensemble.epochs={epochs}", "ensemble.imgsz=32", "ensemble.batch_size=8",
            "ensemble.budget.imgsz=32", f"ensemble.base_model={ws / 'absent.pt'}",
            # no chain to continue here: the variant has its own architecture and a random start
            "ensemble.variants.high_recall.model_size=yolov8n", "ensemble.variants.high_recall.pretrained=none"]


def test_variants_continue_the_chain_unless_they_have_their_own_architecture(tiny_model, organized_sample,
                                                                              tmp_path):
    import pytest

    from marauder.engines.ultralytics.train import dataset_names
    from marauder.errors import MissingInputError
    from marauder.train.ensemble import plan_variant_start
    from marauder.workspace import Workspace

    ws = Workspace.at(tmp_path / "ws")
    names = dataset_names(organized_sample / "dataset.yaml")
    general = GeneralConfig(device="cpu", imgsz=32)
    cfg = tiny_ensemble(organized_sample / "dataset.yaml", tiny_model)

    chain = plan_variant_start(cfg, "recall", EnsembleVariant(), general, ws, names)
    same = plan_variant_start(cfg, "recall", EnsembleVariant(model_size="yolov8n"), general, ws, names)
    for start in (chain, same):  # tiny_model is a yolov8n: both continue from it, every tensor
        assert start.continues and start.model == tiny_model
        assert start.report["transfers"][0]["fraction"] == 1.0

    own = plan_variant_start(cfg, "recall", EnsembleVariant(model_size="yolov8n+efficientnet_lite0",
                                                            pretrained="imagenet"), general, ws, names)
    assert not own.continues and own.arch == "yolov8n+efficientnet_lite0"
    assert own.report["transfers"][0]["backbone_fraction"] == 1.0 and own.model.is_file()

    orphan = tiny_ensemble(organized_sample / "dataset.yaml", tmp_path / "absent.pt")
    with pytest.raises(MissingInputError):  # nothing to continue and no architecture of its own
        plan_variant_start(orphan, "recall", EnsembleVariant(), general, ws, names)


def test_sigkilled_training_resumes_from_last_pt(organized_sample, tmp_path, capsys):
    from marauder.engines.ultralytics.multiscale import checkpoint_progress

    ws = tmp_path / "ws"
    ws.mkdir()
    args = _cli_args(ws, organized_sample / "dataset.yaml", epochs=3)
    last = ws / "checkpoints" / "ensemble" / "high_recall" / "last.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "YOLO_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "marauder.cli", *args], cwd=ws, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not last.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert last.is_file(), "no epoch checkpoint was mirrored before the deadline"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    progress = checkpoint_progress(last)
    assert not progress["finished"] and 1 <= progress["epoch"] < 3
    state = json.loads((last.parent / "training.json").read_text())
    assert state["status"] == "training"

    assert main(args) == 0  # the plain rerun continues
    log_text = (ws / "logs" / "5a_ensemble.log").read_text()
    assert f"resuming from {last} (epoch {progress['epoch']} of 3)" in log_text
    assert json.loads((last.parent / "training.json").read_text())["status"] == "finished"
    assert checkpoint_progress(last)["finished"] and (last.parent / "best.pt").is_file()
    rows = (ws / "runs" / "ensemble" / "high_recall" / "results.csv").read_text().strip().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [1, 2, 3]

    # --resume on a finished checkpoint changes nothing; a path outside a variant folder is an error
    mtime = last.stat().st_mtime_ns
    assert main([*args, "--resume", str(last)]) == 0
    assert last.stat().st_mtime_ns == mtime
    stray = tmp_path / "stray.pt"
    shutil.copy2(last, stray)
    assert main([*args, "--resume", str(stray)]) == 2

    # the guide's `--validate`: one table, the ensemble against its best member
    capsys.readouterr()
    assert main([*args, "--validate"]) == 0
    out = capsys.readouterr().out
    assert "ensemble (wbf)" in out and "vs best member high_recall" in out
    assert (ws / "outputs" / "ensemble" / "validation.json").is_file()


def test_over_budget_stops_before_training(organized_sample, tmp_path, capsys):
    ws = tmp_path / "ws"
    ws.mkdir()
    args = _cli_args(ws, organized_sample / "dataset.yaml", epochs=1) + ["ensemble.budget.max_params_m=1.5"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "ensemble.variants.high_recall (yolov8n) is over the deployment budget" in " ".join(err.split())
    assert not (ws / "checkpoints" / "ensemble" / "high_recall" / "last.pt").exists()


def test_resume_from_an_unreadable_checkpoint_is_a_clear_error(organized_sample, tmp_path, capsys):
    ws = tmp_path / "ws"
    broken = ws / "checkpoints" / "ensemble" / "high_recall" / "last.pt"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"half a checkpoint")
    assert main([*_cli_args(ws, organized_sample / "dataset.yaml", epochs=1), "--resume", str(broken)]) == 2
    assert "--resume: cannot read checkpoint" in " ".join(capsys.readouterr().err.split())
