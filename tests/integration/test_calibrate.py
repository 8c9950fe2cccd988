"""`marauder calibrate` end to end on a really trained tiny model, then the pipeline as a predictor."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from marauder.cli import main
from marauder.errors import ConfigError
from marauder.infer.predictor import load_predictor

OVERRIDES = [
    "tta_calibration.tta.hflip=true",
    "tta_calibration.tta.rotations=[90]",
    "tta_calibration.tta.scales=[1.0,1.25]",
    "tta_calibration.calibration.min_samples_per_class=5",
    "tta_calibration.calibration.folds=3",
    "tta_calibration.thresholds.bootstrap=50",
    "tta_calibration.raw_confidence=0.001",
    "general.device=cpu",
]


@pytest.fixture(scope="module")
def calibrated(tiny_model, organized_sample, tmp_path_factory):
    ws = tmp_path_factory.mktemp("calibrate_ws")
    second = ws / "models" / "copy" / "best.pt"  # a two-member "ensemble" of the same weights
    second.parent.mkdir(parents=True)
    shutil.copy(tiny_model, second)
    rc = main(
        [
            "calibrate",
            "--workspace",
            str(ws),
            "--models",
            str(tiny_model),
            str(second),
            "--calibration-data",
            str(organized_sample / "val"),
            "--batch",
            "4",
            *OVERRIDES,
        ]
    )
    assert rc == 0
    return ws, ws / "checkpoints" / "tta_calibration"


def test_outputs_are_written(calibrated):
    import torch

    _, out = calibrated
    for name in (
        "pipeline_config.yaml",
        "calibrator.pth",
        "report.json",
        "report.md",
        "reliability_diagram.png",
        "resolved_config.yaml",
    ):
        assert (out / name).is_file(), name
    cal = torch.load(out / "calibrator.pth", weights_only=True)
    report = json.loads((out / "report.json").read_text())
    assert cal["class_names"] == report["class_names"]
    assert "__pooled__" in cal["calibration"]
    assert report["views"] == ["identity", "hflip", "rot90", "scale1.25"]
    for key in ("single_model", "ensemble", "ensemble_tta"):
        assert 0.0 <= report["map"][key]["mAP50-95"] <= report["map"][key]["mAP50"] <= 1.0
    assert report["ece"]["before"] is not None and report["ece"]["after"] is not None
    assert len(report["thresholds"]) == len(report["class_names"])
    assert "ECE before" in (out / "report.md").read_text()
    assert cv2.imread(str(out / "reliability_diagram.png")) is not None


def test_pipeline_yaml_is_a_predictor(calibrated, organized_sample):
    _, out = calibrated
    predictor = load_predictor(out / "pipeline_config.yaml", device="cpu")
    images = [cv2.imread(str(p)) for p in sorted((organized_sample / "images" / "val").iterdir())[:3]]
    dets = predictor.predict(images)
    assert predictor.class_names == json.loads((out / "report.json").read_text())["class_names"]
    assert predictor.thresholds.shape == (len(predictor.class_names),)
    assert [d.image_size for d in dets] == [im.shape[:2] for im in images]
    for d in dets:
        assert np.all((d.scores >= 0) & (d.scores <= 1))
        h, w = d.image_size
        assert np.all(d.xyxy >= 0) and np.all(d.xyxy[:, [0, 2]] <= w) and np.all(d.xyxy[:, [1, 3]] <= h)
    thresholded = load_predictor(out / "pipeline_config.yaml", device="cpu", apply_thresholds=True).predict(
        images
    )
    for full, kept in zip(dets, thresholded):
        assert len(kept) == int(np.sum(full.scores >= predictor.thresholds[full.class_ids]))


def test_evaluating_the_pipeline_yaml_uses_its_thresholds(calibrated, organized_sample):
    from marauder.evaluate.runner import evaluate_model
    from marauder.infer.pipeline_spec import load_pipeline_spec

    _, out = calibrated
    spec = load_pipeline_spec(out / "pipeline_config.yaml")
    report = evaluate_model(
        out / "pipeline_config.yaml",
        organized_sample / "dataset.yaml",
        split="val",
        bootstrap=0,
        device="cpu",
        batch=8,
    )
    cal_report = json.loads((out / "report.json").read_text())
    # calibration is monotone per class, so ranking (hence AP) stays that of the uncalibrated TTA ensemble
    assert report.summary["mAP50"] == pytest.approx(cal_report["map"]["ensemble_tta"]["mAP50"], abs=0.05)
    for name, t in spec.thresholds.items():
        assert report.summary["per_class"][name]["threshold"] == pytest.approx(t, abs=1e-6)


def test_unlabelled_calibration_data_is_a_clear_error(tiny_model, organized_sample, tmp_path, capsys):
    data = tmp_path / "unlabelled"
    shutil.copytree(organized_sample / "images" / "val", data)
    rc = main(
        [
            "calibrate",
            "--workspace",
            str(tmp_path),
            "--models",
            str(tiny_model),
            "--calibration-data",
            str(data),
            "general.device=cpu",
        ]
    )
    assert rc == 2
    assert "calibration data has no labels" in capsys.readouterr().err.replace("\n", "")
    assert not (tmp_path / "checkpoints" / "tta_calibration" / "pipeline_config.yaml").exists()


def test_missing_model_is_a_clear_error(organized_sample, tmp_path, capsys):
    rc = main(
        [
            "calibrate",
            "--workspace",
            str(tmp_path),
            "--models",
            str(tmp_path / "nope.pt"),
            "--calibration-data",
            str(organized_sample / "val"),
        ]
    )
    assert rc == 2 and "nope.pt" in capsys.readouterr().err


def test_hand_edited_pipeline_yaml_with_unknown_key(calibrated, tmp_path):
    _, out = calibrated
    edited = tmp_path / "pipeline_config.yaml"
    lines = (out / "pipeline_config.yaml").read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith("fusion:"))
    lines.insert(i + 1, "  iou_treshold: 0.6")
    edited.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as err:
        load_predictor(edited)
    assert "iou_treshold" in str(err.value) and f":{i + 2}:" in str(err.value)


def test_class_absent_from_calibration_data_is_reported(tiny_model, organized_sample, tmp_path):
    from marauder.calibrate.stage import run_calibrate
    from marauder.config.sections.deploy import CalibrationConfig, TTACalibrationConfig, TTAConfig

    for kind in ("images", "labels"):
        shutil.copytree(organized_sample / kind / "val", tmp_path / "data" / kind / "val")
    for label in (tmp_path / "data" / "labels" / "val").glob("*.txt"):  # drop every class-0 box
        label.write_text(
            "".join(ln + "\n" for ln in label.read_text().splitlines() if not ln.startswith("0 "))
        )
    cfg = TTACalibrationConfig(
        tta=TTAConfig(enabled=False),
        raw_confidence=0.001,
        calibration=CalibrationConfig(folds=2, min_samples_per_class=5),
    )
    result = run_calibrate(
        cfg, [], [tiny_model], tmp_path / "data" / "images" / "val", tmp_path / "out", device="cpu"
    )
    name = result.report["class_names"][0]
    assert result.report["absent_classes"] == [name]
    assert result.report["calibration"][0]["absent"] is True
    assert "absent from calibration data" in (tmp_path / "out" / "report.md").read_text()
    assert "pooled threshold used" in result.report["thresholds"][0]["note"]
