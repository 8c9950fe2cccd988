"""`marauder export --validate --package` on a tiny trained model, then the package on its own.

The package is used the way the Jetson uses it: unpacked from the .tar.gz, checked, and run by the
carried runtime in a fresh virtualenv holding only numpy, OpenCV (headless), onnxruntime and PyYAML.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from marauder.cli import main

REPO = Path(__file__).resolve().parents[2]
EDGE_DEPS = ["numpy", "opencv-python-headless", "onnxruntime", "pyyaml"]


@pytest.fixture(scope="module")
def exported(tiny_model, organized_sample, tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("export_ws")
    shutil.copy2(tiny_model, ws / "balanced.pt")
    rc = main(["export", "--workspace", str(ws), "--config", str(REPO / "config" / "sample.yaml"),
               "--models", "balanced.pt", "--names", "balanced", "--data", str(organized_sample / "dataset.yaml"),
               "--validate", "--package"])
    assert rc == 0
    return ws


def test_export_writes_onnx_reports_and_package(exported):
    root = exported / "checkpoints" / "tensorrt"
    assert (root / "models" / "balanced.onnx").is_file()
    report = json.loads((root / "validation" / "parity_report.json").read_text())
    assert report["passed"] is True
    model = report["models"][0]
    assert model["max_box_diff_px"] <= 1.0 and model["max_score_diff"] <= 1e-3
    assert model["map_original"] is not None and set(model["recall"])  # evaluated on the test split
    assert "| balanced |" in (root / "validation" / "parity_report.md").read_text()
    assert (exported / "logs" / "8_tensorrt_export.log").is_file()

    pkg = root / "nano_deployment"
    for rel in ("models/balanced.onnx", "deployment_config.yaml", "deployment_config.json", "SHA256SUMS",
                "build_engines.sh", "build_engines.py", "run_edge.sh", "requirements.txt", "README.md",
                "runtime/marauder_edge/__main__.py", "runtime/marauder_edge/calibration.py",
                "reports/parity_report.md"):
        assert (pkg / rel).is_file(), rel
    assert os.access(pkg / "build_engines.sh", os.X_OK)
    assert list((pkg / "samples").glob("*.jpg"))
    import yaml

    cfg = yaml.safe_load((pkg / "deployment_config.yaml").read_text())
    sample_cfg = yaml.safe_load((REPO / "config" / "sample.yaml").read_text())
    assert cfg["imgsz"] == sample_cfg["export"]["imgsz"] and cfg["models"][0]["confidence_threshold"] == 0.25
    assert cfg["capture"]["target_fps"] == 5.0 and cfg["energy"]["energy_budget_wh"] == 0.05
    assert set(cfg["thresholds"]) == set(cfg["class_names"])
    listed = (pkg / "SHA256SUMS").read_text()
    assert "models/balanced.onnx" in listed and "runtime/marauder_edge/pipeline.py" in listed
    with tarfile.open(root / "nano_deployment.tar.gz") as tar:
        assert "nano_deployment/models/balanced.onnx" in tar.getnames()


def _unpack(exported: Path, dest: Path) -> Path:
    with tarfile.open(exported / "checkpoints" / "tensorrt" / "nano_deployment.tar.gz") as tar:
        tar.extractall(dest)
    return dest / "nano_deployment"


def _edge(python: str, pkg: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(pkg / "runtime"), MARAUDER_EDGE_LOG="WARNING")
    return subprocess.run([python, "-m", "marauder_edge", args[0], str(pkg), *args[1:]], capture_output=True,
                          text=True, env=env, timeout=120, cwd=pkg)


@pytest.mark.parametrize("damage,message", [
    (lambda p: (p / "models" / "balanced.onnx").write_bytes(b"tampered"), "checksum mismatch"),
    (lambda p: (p / "runtime" / "marauder_edge" / "fusion.py").unlink(), "missing: runtime/marauder_edge/fusion.py"),
])
def test_damaged_package_is_refused(exported, tmp_path, damage, message):
    pkg = _unpack(exported, tmp_path)
    assert _edge(sys.executable, pkg, "verify").returncode == 0
    damage(pkg)
    run = _edge(sys.executable, pkg, "verify")
    assert run.returncode == 2
    assert message in run.stderr and "SHA256SUMS" in run.stderr


def test_build_engines_without_tensorrt_says_where_to_run_it(exported, tmp_path):
    pytest.importorskip("onnxruntime")
    if shutil.which("trtexec"):
        pytest.skip("TensorRT is installed here")
    pkg = _unpack(exported, tmp_path)
    run = _edge(sys.executable, pkg, "build-engines")
    assert run.returncode == 2 and "run ./build_engines.sh" in run.stderr


def test_validation_failure_is_reported(tiny_model, exported):
    from marauder.config.sections.deploy import EvaluationConfig, ExportConfig
    from marauder.export.parity import validate_model, write_reports

    onnx = exported / "checkpoints" / "tensorrt" / "models" / "balanced.onnx"
    images = [np.full((90, 120, 3), 90, np.uint8), np.random.default_rng(0).integers(0, 255, (50, 70, 3), np.uint8)]
    strict = ExportConfig(max_box_diff_px=0.0, max_score_diff=0.0)
    result = validate_model("balanced", tiny_model, onnx, dataset_yaml=None, images=images, cfg=strict,
                            eval_cfg=EvaluationConfig(), imgsz=64)
    assert not result.passed and any("score difference" in f for f in result.failures)
    json_path, md_path = write_reports([result], exported / "strict", strict)
    assert json.loads(json_path.read_text())["passed"] is False and "FAILED" in md_path.read_text()


@pytest.mark.parametrize("argv,message", [
    (["--models", "balanced.pt", "--names", "a", "b"], "1 models but 2 names"),
    (["--models", "missing.pt"], "run `marauder train-ensemble` first"),
])
def test_bad_arguments_exit_2(exported, capsys, argv, message):
    rc = main(["export", "--workspace", str(exported), *argv])
    assert rc == 2 and message in capsys.readouterr().err.replace("\n", " ")


@pytest.fixture(scope="session")
def edge_venv(tmp_path_factory) -> str:
    """A fresh virtualenv with only the edge runtime's dependencies (no torch, no ultralytics)."""
    venv = tmp_path_factory.mktemp("edge_venv") / "venv"
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=60)
        pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *EDGE_DEPS],
                             capture_output=True, text=True, timeout=180)
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"cannot create a clean venv: {exc}")
    if pip.returncode != 0:
        pytest.skip(f"pip could not install {EDGE_DEPS} (offline?): {pip.stderr.strip()[-300:]}")
    return str(venv / "bin" / "python")


def test_package_runs_in_a_venv_without_torch(exported, edge_venv, organized_sample, tmp_path):
    pkg = _unpack(exported, tmp_path)
    probe = subprocess.run([edge_venv, "-c", "import importlib.util as u; print(u.find_spec('torch') is None, "
                            "u.find_spec('ultralytics') is None, u.find_spec('pydantic') is None)"],
                           capture_output=True, text=True)
    assert probe.stdout.split() == ["True", "True", "True"]

    images = sorted((organized_sample / "images" / "test").glob("*.jpg"))[:4]
    run = _edge(edge_venv, pkg, "detect", "--all", *map(str, images))
    assert run.returncode == 0, run.stderr
    edge = json.loads(run.stdout)

    # same detections as the Python side (main venv) on the same ONNX with the same thresholds
    from marauder.runtime.pipeline import EdgePipeline

    python = EdgePipeline(pkg, backend="onnx", apply_thresholds=False)
    for item, path in zip(edge, images):
        expected = python.predict([cv2.imread(str(path))])[0]
        got = item["detections"]
        assert len(got) == len(expected)
        for rec, box, score in zip(got, expected.xyxy.tolist(), expected.scores.tolist()):
            assert np.abs(np.array(rec["box"]) - box).max() <= 1.0 and abs(rec["score"] - score) <= 1e-3

    out = tmp_path / "capture"
    run = _edge(edge_venv, pkg, "run", "--source", str(organized_sample / "images" / "test"), "--out", str(out),
                "--fps", "50", "--duration", "20")
    assert run.returncode == 0, run.stderr
    summary = json.loads((out / "summary.json").read_text())
    lines = (out / "detections.jsonl").read_text().splitlines()
    assert summary["stop_reason"] == "source ended" and summary["frames"] == len(lines) == len(
        list((organized_sample / "images" / "test").glob("*.jpg")))
    assert summary["energy_wh"] > 0 and summary["backend"] == "onnx"


def test_plan_prints_fps_and_energy_per_setting(exported, capsys):
    from marauder.runtime.__main__ import main as edge_main

    pkg = exported / "checkpoints" / "tensorrt" / "nano_deployment"
    assert edge_main(["plan", str(pkg), "--latency-ms", "150", "--fps", "5", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    measured = [r for r in rows if r["config"] == "ensemble of 1 (measured)"]
    assert {(r["target_fps"], r["duration_s"]) for r in measured} == {(5, 30.0), (5, 20.0), (3, 30.0), (3, 20.0)}
    assert any("yolov8m (estimate)" in r["config"] for r in rows)
    five = next(r for r in measured if r["target_fps"] == 5 and r["duration_s"] == 30.0)
    # 30 s at 5 fps x 150 ms: 75% busy at 10 W + 25% idle at 2 W = 8 W -> 0.0667 Wh, over 0.05
    assert five["energy_wh"] == pytest.approx(8 * 30 / 3600, abs=1e-4) and five["within_budget"] is False
    assert edge_main(["plan", str(pkg), "--latency-ms", "150"]) == 0
    assert "budget 0.0500 Wh" in capsys.readouterr().out
