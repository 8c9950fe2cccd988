"""`marauder pipeline` end to end on the sample: vendor pause, import, resume, and up-to-date skips."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from marauder.cli import main
from marauder.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
# The sample config with every training stage cut to one epoch: this test is about orchestration.
FAST = [
    "ssl_pretraining.epochs=1", "baseline_yolo.epochs=1", "critical_species.hard_negative_mining.epochs_per_iteration=1",
    "ensemble.epochs=1", "multiscale_training.epochs=1", "general.imgsz=64", "baseline_yolo.imgsz=64",
    "ensemble.imgsz=64", "ensemble.budget.imgsz=64", "active_learning.imgsz=64", "tta_calibration.imgsz=64",
    "export.imgsz=64", "evaluation.imgsz=64", "multiscale_training.resolutions=[64,96]",
]


def _demo_module():
    spec = importlib.util.spec_from_file_location("demo", REPO / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _state(ws: Workspace) -> dict:
    return json.loads((ws.outputs("pipeline") / "state.json").read_text())["stages"]


def _assert_one_weight_chain(ws: Workspace) -> None:
    """Each variant started from the critical-species model (>= 90 % of its parameters, from the recorded
    transfer), and calibrate and export used the multi-scale models."""
    import yaml

    from marauder.config import load_config

    variants = list(load_config(REPO / "config" / "sample.yaml").ensemble.variants)
    for name in variants:
        init = json.loads((ws.ensemble_dir(name) / "init.json").read_text())
        assert Path(init["continues"]) == ws.critical_best
        assert init["transfers"][0]["fraction"] >= 0.9, init
    deployed = yaml.safe_load((ws.deployment_dir / "deployment_config.yaml").read_text())["models"]
    assert [m["name"] for m in deployed] == [f"{n}_multiscale" for n in variants]
    calibrated = yaml.safe_load(ws.pipeline_config.read_text())["models"]
    assert [Path(m["path"]).parent.name for m in calibrated] == [f"{n}_multiscale" for n in variants]


@pytest.mark.slow
def test_pipeline_pauses_for_the_vendor_resumes_and_skips_what_is_done(tmp_path, capsys):
    ws = Workspace.at(tmp_path / "ws")
    common = ["--workspace", str(ws.root), "--config", str(REPO / "config" / "sample.yaml")]
    assert main(["sample", "--into-workspace", *common]) == 0

    # 1. runs up to active learning, then pauses: nothing after it has run
    assert main(["pipeline", "--skip", "download", *common, *FAST]) == 0
    state = _state(ws)
    assert [state[s]["status"] for s in ("organize", "ssl-pretrain", "train-baseline", "active-learn")] == ["done"] * 4
    assert state["active-learn"]["metric"] == "waiting for vendor labels"
    assert "train-critical" not in state or state["train-critical"]["status"] == "pending"
    assert ws.annotation_package.is_file()
    assert "Paused for annotation" in capsys.readouterr().err

    # 2. the vendor's labels come back; the next run keeps the earlier stages and goes on to the end
    vendor = _demo_module().simulate_vendor(ws, tmp_path / "vendor" / "annotations.json")
    assert main(["import-annotations", str(vendor), "--merge", *common]) == 0
    baseline_mtime = ws.baseline_best.stat().st_mtime_ns
    assert main(["pipeline", "--skip", "download", *common, *FAST]) == 0
    state = _state(ws)
    assert all(rec["status"] == "done" for name, rec in state.items()), state
    assert state["active-learn"]["metric"] == "vendor labels imported"
    assert ws.baseline_best.stat().st_mtime_ns == baseline_mtime  # not retrained by the merge
    assert (ws.deployment_dir / "deployment_config.yaml").is_file()
    report = json.loads((ws.outputs("evaluation") / "pipeline" / "report.json").read_text())
    assert "mAP50-95" in report["summary"]
    _assert_one_weight_chain(ws)
    capsys.readouterr()

    # 3. nothing changed: every stage is skipped; changing one section reruns from that stage on
    assert main(["pipeline", "--skip", "download", *common, *FAST]) == 0
    assert capsys.readouterr().err.count("up to date") == 6  # the 6 stages after the vendor round
    before = _state(ws)
    assert main(["pipeline", "--skip", "download", "--from", "calibrate", *common, *FAST,
                 "tta_calibration.thresholds.objective=fbeta"]) == 0
    after = _state(ws)
    assert after["calibrate"]["started"] != before["calibrate"]["started"]  # config changed: reran
    assert after["train-ensemble"]["started"] == before["train-ensemble"]["started"]  # outside --from
