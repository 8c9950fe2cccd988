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
