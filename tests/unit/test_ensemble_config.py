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
