"""EnsemblePredictor over literal members: thresholds first, then fusion, image by image."""

from __future__ import annotations

import numpy as np
import pytest

from marauder.config.sections.stages import FusionConfig
from marauder.infer.ensemble_predictor import EnsemblePredictor
from marauder.types import Detections

SIZE = (100, 100)


class LiteralPredictor:
    """Returns fixed detections per call: a stand-in model with known outputs."""

    def __init__(self, per_image: list[list[tuple]], class_names=("fish", "urchin")):
        self.class_names = list(class_names)
        self.per_image = per_image
        self.calls = 0

    def predict(self, images):
        self.calls += 1
        out = []
        for rows in self.per_image[:len(images)]:
            a = np.array(rows, dtype=float).reshape(-1, 6)
            out.append(Detections(a[:, :4], a[:, 4], a[:, 5].astype(int), SIZE))
        return out


IMAGES = [np.zeros((100, 100, 3), np.uint8), np.zeros((100, 100, 3), np.uint8)]


def test_members_are_thresholded_then_fused_per_image():
    recall = LiteralPredictor([[(10, 10, 50, 50, 0.2, 0)], [(60, 60, 90, 90, 0.9, 1)]])
    precise = LiteralPredictor([[(10, 10, 50, 50, 0.6, 0)], []])
    ens = EnsemblePredictor([recall, precise], conf_thresholds=[0.15, 0.4], fusion_cfg=FusionConfig())
    out = ens.predict(IMAGES)
    assert len(out) == 2
    # image 0: both members pass their thresholds; WBF averages 0.2 and 0.6
    assert out[0].xyxy.tolist() == [[10, 10, 50, 50]] and out[0].scores == pytest.approx([0.4])
    # image 1: one member of two found it: half its score
    assert out[1].class_ids.tolist() == [1] and out[1].scores == pytest.approx([0.45])
    assert ens.class_names == ["fish", "urchin"]


def test_a_member_threshold_removes_its_boxes_before_fusion():
    recall = LiteralPredictor([[(10, 10, 50, 50, 0.2, 0)]])
    precise = LiteralPredictor([[(10, 10, 50, 50, 0.3, 0)]])
    out = EnsemblePredictor([recall, precise], [0.15, 0.4]).predict(IMAGES[:1])
    assert out[0].scores == pytest.approx([0.1])  # only the first member's 0.2 survives, halved


@pytest.mark.parametrize("fusion, expected", [
    ({"method": "nms"}, [0.6]),
    ({"method": "wbf", "conf_type": "max"}, [0.6]),
    ({"method": "wbf", "weights": [1, 3]}, [0.5]),  # (0.2*1 + 0.6*3) / 4
])
def test_fusion_settings_are_passed_through(fusion, expected):
    a = LiteralPredictor([[(10, 10, 50, 50, 0.2, 0)]])
    b = LiteralPredictor([[(10, 10, 50, 50, 0.6, 0)]])
    out = EnsemblePredictor([a, b], None, fusion).predict(IMAGES[:1])
    assert out[0].scores == pytest.approx(expected)


def test_members_must_share_classes_and_counts_must_match():
    a = LiteralPredictor([[]], class_names=("fish", "urchin"))
    b = LiteralPredictor([[]], class_names=("urchin", "fish"))
    with pytest.raises(ValueError, match="share one class list"):
        EnsemblePredictor([a, b])
    with pytest.raises(ValueError, match="1 thresholds for 2 members"):
        EnsemblePredictor([a, LiteralPredictor([[]])], [0.1])
    with pytest.raises(ValueError, match="unknown keys"):
        EnsemblePredictor([a], None, {"method": "wbf", "iou": 0.5})
    with pytest.raises(ValueError, match="at least one member"):
        EnsemblePredictor([])


def test_each_member_predicts_once_per_call():
    a, b = LiteralPredictor([[], []]), LiteralPredictor([[], []])
    EnsemblePredictor([a, b]).predict(IMAGES)
    assert (a.calls, b.calls) == (1, 1)
