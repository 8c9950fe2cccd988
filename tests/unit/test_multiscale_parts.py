"""Multi-scale pieces without training: where outputs go, how sizes are aligned."""

from __future__ import annotations

from pathlib import Path

import pytest

from marauder.train.multiscale import multiscale_target


@pytest.mark.parametrize("source, name, out", [
    ("checkpoints/ensemble/balanced/best.pt", "balanced", "checkpoints/ensemble/balanced_multiscale"),
    ("checkpoints/ensemble/high_recall/last.pt", "high_recall", "checkpoints/ensemble/high_recall_multiscale"),
    ("runs/exp3/weights/best.pt", "exp3", "runs/exp3_multiscale"),
    ("models/fish.pt", "fish", "models/fish_multiscale"),
])
def test_multiscale_checkpoints_go_beside_the_original(source, name, out):
    assert multiscale_target(Path(source)) == (name, Path(out))


@pytest.mark.parametrize("sizes, stride, expected", [
    ([480, 512, 576, 640, 704, 768], 32, [480, 512, 576, 640, 704, 768]),
    ([64, 96, 64], 32, [64, 96]),
    ([480, 512], 64, [512]),  # a stride-64 (P6) model rounds to its own stride
    ([10], 32, [32]),
])
def test_align_resolutions(sizes, stride, expected):
    from marauder.engines.ultralytics.multiscale import align_resolutions

    assert align_resolutions(sizes, stride) == expected
