"""The chain's architecture: one model from the baseline to the package, chosen against the budget first."""

from __future__ import annotations

from pathlib import Path

import pytest

from marauder.config.sections.stages import DeploymentBudget, EnsembleConfig, EnsembleVariant
from marauder.engines.ultralytics.budget import BudgetExceededError, smaller_models
from marauder.train.chain import chain_followers, choose_chain_model


def _ensemble(**variant) -> EnsembleConfig:
    return EnsembleConfig(variants={"a": EnsembleVariant(**variant)},
                          budget=DeploymentBudget(max_params_m=5.0, max_gflops=10.0, imgsz=320))


@pytest.mark.parametrize(("model", "backbone", "chosen"), [
    ("yolov8n", None, "yolov8n"),
    ("yolov8m", None, "yolov8n"),  # over 5 M params: the largest of the family that fits
    ("yolov8s", "efficientnet_lite0", "yolov8n"),
    ("yolov8n", "efficientnet_lite0", "yolov8n"),
])
def test_the_budget_picks_the_chain_model(model, backbone, chosen):
    choice = choose_chain_model(model, backbone, _ensemble(), nc=3)
    assert choice.model_size == chosen
    assert choice.cost["params_m"] <= 5.0
    assert (chosen != model) == ("the chain uses" in choice.note)


def test_a_backbone_that_never_fits_fails_before_any_training():
    with pytest.raises(BudgetExceededError, match="give the variants their own model_size"):
        choose_chain_model("yolov8n", "resnet50", _ensemble(), nc=3)


def test_variants_with_their_own_architecture_leave_the_chain_unchecked():
    ensemble = _ensemble(model_size="yolov8n")
    assert chain_followers(ensemble) == []
    assert choose_chain_model("yolov8m", "resnet50", ensemble, nc=3).cost is None


@pytest.mark.parametrize(("spec", "smaller"), [
    ("yolov8m", ["yolov8s", "yolov8n"]),
    ("yolov8s+efficientnet_lite0", ["yolov8n+efficientnet_lite0"]),
    ("yolov8n", []),
    ("custom.yaml", []),
])
def test_smaller_models_keep_the_backbone(spec, smaller):
    assert smaller_models(spec) == smaller


@pytest.mark.parametrize(("have_coco", "arch", "ssl_backbone"), [
    (True, "yolov8n", "yolov8n"),  # the guide's yolov8m is over budget: the chain is yolov8n, from COCO
    (False, "yolov8n+efficientnet_lite0", "efficientnet_lite0"),  # offline: the packaged ImageNet backbone
])
def test_the_guide_config_plans_one_chain_for_ssl_and_the_baseline(have_coco, arch, ssl_backbone, tmp_path,
                                                                   monkeypatch):
    import torch

    from marauder.config import load_config
    from marauder.engines.ultralytics.backbone import build_detection_model, save_init_checkpoint
    from marauder.train.chain import plan_chain_start, planned_ssl_backbone
    from marauder.workspace import Workspace

    monkeypatch.setenv("YOLO_OFFLINE", "1")
    ws = Workspace.at(tmp_path)
    if have_coco:
        torch.manual_seed(0)
        save_init_checkpoint(build_detection_model("yolov8n", 80), tmp_path / "weights" / "yolov8n.pt")
    cfg = load_config(Path(__file__).resolve().parents[2] / "config" / "training_config.yaml")
    start, chain = plan_chain_start(cfg.baseline_yolo, cfg.general, cfg.ensemble, 3, ws, None, keep_backbone=False)
    assert start.arch == arch and chain.cost["params_m"] <= cfg.ensemble.budget.max_params_m
    assert planned_ssl_backbone(cfg, ws, 3) == ssl_backbone
