"""Critical-species stage parts: the recall gate, the oversampling method switch, the report table."""

from __future__ import annotations

import pytest

from marauder.config.sections.stages import CriticalSpeciesConfig
from marauder.train.critical import check_gate, format_report, train_overrides

CI = {"lionfish": [0.72, 0.9], "abalone": [0.5, 0.85]}


@pytest.mark.parametrize(("recall", "support", "mode", "failed"), [
    ({"lionfish": 0.8, "abalone": 0.7}, {"lionfish": 5, "abalone": 3}, "point", []),
    ({"lionfish": 0.8, "abalone": 0.69}, {"lionfish": 5, "abalone": 3}, "point", ["abalone"]),
    ({"lionfish": 0.0, "abalone": None}, {"lionfish": 5, "abalone": 0}, "point", ["lionfish", "abalone"]),
    # lower_bound judges the interval's low end: abalone's 0.7 point has a CI reaching down to 0.5
    ({"lionfish": 0.8, "abalone": 0.7}, {"lionfish": 5, "abalone": 3}, "lower_bound", ["abalone"]),
    ({"lionfish": 0.8, "abalone": 0.7}, {"lionfish": 5, "abalone": 0}, "lower_bound", ["abalone"]),
])
def test_gate(recall, support, mode, failed):
    gate = check_gate({"recall": recall, "recall_ci": CI, "support": support}, 0.70, mode)
    assert gate["passed"] == (not failed) and gate["mode"] == mode
    assert [f["species"] for f in gate["failures"]] == failed


@pytest.mark.parametrize(("oversampling", "train_args", "expect"), [
    ({"method": "repeat"}, {}, {}),
    ({"method": "class_weights"}, {}, {"cls_pw": 1.0}),
    ({"method": "class_weights", "class_weight_power": 0.5}, {"lr0": 0.001}, {"cls_pw": 0.5, "lr0": 0.001}),
    ({"method": "class_weights", "enabled": False}, {}, {}),
])
def test_class_weights_map_to_ultralytics_cls_pw(oversampling, train_args, expect):
    cfg = CriticalSpeciesConfig(oversampling=oversampling, train_args=train_args)
    assert train_overrides(cfg) == expect


def test_review_confidence_below_mining_confidence_is_rejected():
    with pytest.raises(ValueError, match="review_confidence"):
        CriticalSpeciesConfig(hard_negative_mining={"confidence": 0.5, "review_confidence": 0.3})


def test_report_names_failed_species():
    row = {"iteration": 1, "status": "trained", "epochs": 2, "train_entries": 30, "mAP50": 0.5, "mAP50-95": 0.3,
           "recall": {"lionfish": 0.9, "abalone": 0.4}, "recall_ci": {"lionfish": [0.8, 1.0], "abalone": [0.1, 0.7]},
           "support": {"lionfish": 4, "abalone": 4}, "negatives_added": 3, "sent_for_review": 1,
           "unreadable": 0, "review_package": "outputs/critical_species/review_iter1.zip"}
    doc = {"species": ["lionfish", "abalone"], "iterations": [row], "operating_confidence": 0.25,
           "gate": check_gate(row, 0.7)}
    text = format_report(doc)
    assert "R abalone [95% CI]" in text and "0.4000 [0.1000, 0.7000]" in text
    assert "recall gate FAILED" in text and "abalone: recall 0.4000 < 0.7" in text and "lionfish:" not in text
    assert "review_iter1.zip" in text
