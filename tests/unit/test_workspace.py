"""The workspace owns the guide's paths: one root moves them all."""

from __future__ import annotations

from pathlib import Path

import pytest

from marauder.workspace import SPLITS, Workspace

# (attribute or call, path relative to the workspace root, as the training guide names it)
GUIDE_PATHS = [
    ("fathomnet_images", "data/fathomnet/images"),
    ("fathomnet_labels", "data/fathomnet/labels"),
    ("fathomnet_metadata", "data/fathomnet/metadata.json"),
    ("deepfish_images", "data/deepfish/images"),
    ("marauder_images", "data/marauder/images"),
    ("organized_dir", "data/organized"),
    ("dataset_yaml", "data/organized/dataset.yaml"),
    ("annotated_labels", "data/annotated/labels"),
    ("ssl_best", "checkpoints/ssl/best_moco.pth"),
    ("baseline_best", "checkpoints/baseline/best.pt"),
    ("critical_best", "checkpoints/critical_species/best.pt"),
    ("pipeline_config", "checkpoints/tta_calibration/pipeline_config.yaml"),
    ("calibrator", "checkpoints/tta_calibration/calibrator.pth"),
    ("deployment_dir", "checkpoints/tensorrt/nano_deployment"),
    ("annotation_package", "outputs/active_learning/annotation_package.zip"),
    ("logs_dir", "logs"),
    ("ensemble_validation", "outputs/ensemble/validation.json"),
    ("multiscale_comparison", "outputs/multiscale/multiscale_comparison.json"),
    ("calibration_report", "checkpoints/tta_calibration/report.json"),
    ("deployment_config", "checkpoints/tensorrt/nano_deployment/deployment_config.yaml"),
    ("parity_report", "checkpoints/tensorrt/validation/parity_report.json"),
    ("selection_ledger", "outputs/active_learning/ledger.csv"),
    ("pipeline_state", "outputs/pipeline/state.json"),
]


@pytest.mark.parametrize("attr,relative", GUIDE_PATHS, ids=[p[0] for p in GUIDE_PATHS])
def test_guide_paths(tmp_path, attr, relative):
    ws = Workspace.at(tmp_path)
    assert getattr(ws, attr) == tmp_path / relative


# (method, argument, expected relative path)
CALLS = [
    ("organized_images", "train", "data/organized/images/train"),
    ("organized_labels", "test", "data/organized/labels/test"),
    ("checkpoints", "ensemble", "checkpoints/ensemble"),
    ("ensemble_dir", "high_recall", "checkpoints/ensemble/high_recall"),
    ("outputs", "evaluation", "outputs/evaluation"),
    ("log_file", "1_baseline", "logs/1_baseline.log"),
    ("log_file", "5a_ensemble", "logs/5a_ensemble.log"),
    ("multiscale_dir", "balanced", "checkpoints/ensemble/balanced_multiscale"),
    ("stage_metrics", "baseline", "checkpoints/baseline/metrics.jsonl"),
    ("evaluation_report", "pipeline", "outputs/evaluation/pipeline/report.json"),
    ("stage_checkpoints", "calibrate", "checkpoints/tta_calibration"),
    ("stage_checkpoints", "train-multiscale", "checkpoints/ensemble"),
    ("stage_outputs", "train-multiscale", "outputs/multiscale"),
    ("stage_outputs", "import-annotations", "outputs/active_learning"),
]


@pytest.mark.parametrize("method,arg,relative", CALLS, ids=[f"{c[0]}({c[1]})" for c in CALLS])
def test_guide_path_functions(tmp_path, method, arg, relative):
    assert getattr(Workspace.at(tmp_path), method)(arg) == tmp_path / relative


def test_default_root_is_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Workspace.at().root == tmp_path.resolve()
    assert Workspace.at(None).dataset_yaml == tmp_path.resolve() / "data/organized/dataset.yaml"


def test_relative_root_is_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Workspace.at("ws").root == (tmp_path / "ws").resolve()


@pytest.mark.parametrize("given,expected", [
    ("data/x", "{root}/data/x"), ("/abs/x", "/abs/x"), ("~/x", "{home}/x"),
])
def test_path_resolves_config_values(tmp_path, given, expected):
    ws = Workspace.at(tmp_path)
    assert ws.path(given) == Path(expected.format(root=tmp_path, home=Path.home()))


def test_splits_and_pools(tmp_path):
    ws = Workspace.at(tmp_path)
    assert SPLITS == ("train", "val", "test")
    assert ws.unlabelled_dirs == [tmp_path / "data/deepfish/images", tmp_path / "data/marauder/images"]


def test_every_stage_command_has_one_row_naming_a_real_section():
    """STAGE_FOLDERS is the one table of stage names: every command that starts a stage is in it, and
    the section it names is a section of the config."""
    import re

    from marauder.config import MarauderConfig
    from marauder.workspace import STAGE_FOLDERS

    commands = Path(__file__).resolve().parents[2] / "src" / "marauder" / "commands"
    started = {m for f in commands.glob("*.py") for m in re.findall(r'start_stage\("([a-z-]+)"', f.read_text())}
    assert started == set(STAGE_FOLDERS)
    sections = set(MarauderConfig.model_fields)
    assert all(s.section is None or s.section in sections for s in STAGE_FOLDERS.values())
    with pytest.raises(KeyError, match="no checkpoints folder"):
        Workspace.at(".").stage_checkpoints("evaluate")
