"""The ensemble and multiscale_training config sections reject what would fail later."""

from __future__ import annotations

import pytest

from marauder.config import load_config
from marauder.errors import ConfigError


@pytest.mark.parametrize("override, message", [
    ("multiscale_training.resolutions=[480,500]", "multiples of 32"),
    ("multiscale_training.resolutions=[]", "resolutions"),
    ("ensemble.fusion.weights=[1,2]", "fusion.weights has 2 entries for 3 variants"),
    ("ensemble.fusion.weights=[0,0,0]", "at least one > 0"),
    ("ensemble.fusion.method=nmw", "method"),
    ("ensemble.variants={'a/b': {}}", "plain folder name"),
    ("ensemble.variants={'fast_multiscale': {}}", "not ending in _multiscale"),
    ("ensemble.variants.balanced.confidence_threshold=1.5", "confidence_threshold"),
    ("ensemble.variants.balanced.colour=1", "colour"),
])
def test_bad_values_are_config_errors_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_shipped_configs_define_the_three_variants(tmp_path):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    for name in ("training_config.yaml", "sample.yaml"):
        cfg = load_config(repo / "config" / name)
        assert {k: v.confidence_threshold for k, v in cfg.ensemble.variants.items()} == {
            "high_recall": 0.15, "balanced": 0.25, "high_precision": 0.4}
        assert all(r % 32 == 0 for r in cfg.multiscale_training.resolutions)
    full = load_config(repo / "config" / "training_config.yaml")
    assert full.multiscale_training.resolutions == [480, 512, 576, 640, 704, 768]
    assert full.ensemble.variants["high_recall"].augmentation["mixup"] > 0  # heavy
    assert full.ensemble.variants["high_precision"].augmentation["mosaic"] < 1  # light


def test_variant_spec_follows_the_init_weights_content_not_just_the_path(tmp_path):
    from marauder.config.sections.general import GeneralConfig
    from marauder.config.sections.stages import EnsembleConfig
    from marauder.train.ensemble import variant_spec

    cfg = EnsembleConfig()
    name = next(iter(cfg.variants))
    init = tmp_path / "best.pt"
    init.write_bytes(b"first base model")
    spec = variant_spec(cfg, name, cfg.variants[name], GeneralConfig(), tmp_path / "d.yaml", init)
    init.write_bytes(b"retrained base model")  # same path, new weights: the variant must not be skipped
    assert variant_spec(cfg, name, cfg.variants[name], GeneralConfig(), tmp_path / "d.yaml", init) != spec
    assert variant_spec(cfg, name, cfg.variants[name], GeneralConfig(), tmp_path / "d.yaml", None)["init_sha256"] is None


def test_a_missing_init_from_fails_before_any_variant_trains(organized_sample, tmp_path, monkeypatch):
    from marauder.config.sections.general import GeneralConfig
    from marauder.config.sections.stages import EnsembleConfig
    from marauder.errors import MarauderError
    from marauder.train import ensemble
    from marauder.workspace import Workspace

    cfg = EnsembleConfig(data=str(organized_sample / "dataset.yaml"), budget={"imgsz": 64}, variants={
        "first": {"model_size": "yolov8n"},
        "second": {"model_size": "yolov8n", "init_from": "nowhere/best.pt"},
    })
    monkeypatch.setattr(ensemble, "train_resumable", lambda *a, **k: pytest.fail("trained before checking"))
    with pytest.raises(MarauderError, match="ensemble.variants.second.init_from: .*nowhere/best.pt not found"):
        ensemble.run_ensemble(cfg, GeneralConfig(), Workspace.at(tmp_path))
