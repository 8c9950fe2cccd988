"""Class mapping, baseline comparison and report files (literal summaries)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from marauder.errors import DataError, MarauderError
from marauder.evaluate.classmap import class_index_map, parse_class_map, remap
from marauder.evaluate.compare import compare_reports
from marauder.evaluate.report import EvaluationReport, clean_json
from marauder.types import Detections


@pytest.mark.parametrize("model,data,cmap,expected", [
    (["a", "b"], ["a", "b"], None, [0, 1]),
    (["b", "a"], ["a", "b"], {}, [1, 0]),  # same names, other order: a map (even empty) reorders
    (["fish", "ray"], ["fish", "stingray"], {"ray": "stingray"}, [0, 1]),
    (["fish", "diver"], ["fish"], {"diver": None}, [0, -1]),
])
def test_class_index_map(model, data, cmap, expected):
    assert class_index_map(model, data, cmap).tolist() == expected


@pytest.mark.parametrize("model,data,cmap,message", [
    (["fish", "ray"], ["fish", "stingray"], None,
     r"only in the model: \['ray'\]; only in the dataset: \['stingray'\]\); pass --map-classes"),
    (["b", "a"], ["a", "b"], None, "same names in another order"),
    (["fish", "ray"], ["fish", "stingray"], {"ray": "manta"}, "'ray' maps to 'manta', which is not a dataset class"),
    (["fish"], ["fish"], {"shark": "fish"}, "names classes the model does not have: \\['shark'\\]"),
])
def test_class_index_map_errors(model, data, cmap, message):
    with pytest.raises(MarauderError, match=message):
        class_index_map(model, data, cmap)


@pytest.mark.parametrize("text,expected", [
    (None, None),
    ("ray=stingray", {"ray": "stingray"}),
    ("ray=stingray, diver=-", {"ray": "stingray", "diver": None}),
])
def test_parse_class_map(text, expected):
    assert parse_class_map(text) == expected


def test_parse_class_map_file_and_errors(tmp_path):
    f = tmp_path / "map.yaml"
    f.write_text("ray: stingray\ndiver: null\n")
    assert parse_class_map(str(f)) == {"ray": "stingray", "diver": None}
    with pytest.raises(MarauderError, match="'ray' is not MODEL_CLASS=DATASET_CLASS"):
        parse_class_map("ray")
    f.write_text("ray: [stingray\n")  # broken YAML: one line naming the file
    with pytest.raises(MarauderError, match="cannot read class map") as err:
        parse_class_map(str(f))
    assert str(f) in str(err.value)


def test_remap_drops_and_rejects_unknown_ids():
    d = Detections(np.zeros((3, 4)), [0.9, 0.8, 0.7], [0, 1, 0], (10, 10))
    out = remap(d, np.array([2, -1]))
    assert out.class_ids.tolist() == [2, 2] and out.scores.tolist() == pytest.approx([0.9, 0.7])
    with pytest.raises(DataError, match="produced class id 5, outside its 2 classes"):
        remap(Detections(np.zeros((1, 4)), [0.9], [5], (10, 10)), np.array([0, 1]))


def summary(map_, recalls):
    return {"mAP50-95": map_, "mAP50": map_, "critical_recall": {k: {"recall": v} for k, v in recalls.items()}}


# (new, baseline, passed, failing metrics)
COMPARE_CASES = [
    (summary(0.50, {"ray": 0.8}), summary(0.50, {"ray": 0.8}), True, []),
    (summary(0.496, {"ray": 0.8}), summary(0.50, {"ray": 0.8}), True, []),  # within 0.005
    (summary(0.49, {"ray": 0.8}), summary(0.50, {"ray": 0.8}), False, ["mAP50-95"]),
    (summary(0.60, {"ray": 0.77}), summary(0.50, {"ray": 0.80}), False, ["recall[ray]"]),
    (summary(0.60, {"ray": 0.79}), summary(0.50, {"ray": 0.80}), True, []),
    (summary(0.60, {}), summary(0.50, {"ray": 0.80}), False, ["recall[ray]"]),  # species gone
    (summary(0.60, {"ray": 0.1}), summary(0.50, {}), True, []),  # new species: informative only
    (summary(None, {}), summary(0.5, {}), False, ["mAP50-95"]),
    (summary(0.5, {"ray": float("nan")}), summary(0.5, {"ray": float("nan")}), True, []),  # no labels either side
]


@pytest.mark.parametrize("new,base,passed,failing", COMPARE_CASES)
def test_compare_reports(new, base, passed, failing):
    c = compare_reports(new, base, map_tolerance=0.005, recall_tolerance=0.02)
    assert c.passed is passed
    assert [r.metric for r in c.failures] == failing
    table = c.table()
    assert "mAP50-95" in table and ("PASSED" if passed else "FAILED") in table


def test_compare_shows_deltas():
    c = compare_reports(summary(0.55, {"ray": 0.9}), summary(0.50, {"ray": 0.8}))
    rows = {r.metric: r for r in c.rows}
    assert rows["mAP50-95"].delta == pytest.approx(0.05)
    assert rows["recall[ray]"].delta == pytest.approx(0.1)
    assert "+0.0500" in c.table()


def _report():
    summary_ = {
        "mAP50-95": 0.5, "mAP50": 0.7, "mAP75": 0.4, "AP_small": None, "AP_medium": 0.3, "AP_large": 0.6,
        "per_class": {"ray": {"AP50-95": 0.5, "AP50": 0.7, "precision": 0.8, "recall": 0.6, "f1": 0.69,
                              "support": 10}},
        "critical_recall": {"ray": {"recall": 0.6, "ci_low": 0.4, "ci_high": 0.8}},
        "ece": float("nan"), "latency_ms": 3.0, "throughput_ips": 300.0, "num_images": 4,
    }
    details = {"class_names": ["ray"], "confusion_matrix": [[6, 2], [4, 0]], "arr": np.arange(3)}
    return EvaluationReport(summary_, details, {"model": "m.pt", "split": "test"}, {"pr_curves": b"\x89PNG fake"})


def test_report_write_and_load_round_trip(tmp_path):
    report = _report()
    report.write(tmp_path / "r")
    doc = json.loads((tmp_path / "r" / "report.json").read_text())
    assert doc["schema"] == 1 and doc["summary"]["ece"] is None  # nan -> null (strict JSON)
    assert doc["details"]["arr"] == [0, 1, 2]
    assert (tmp_path / "r" / "plots" / "pr_curves.png").read_bytes() == b"\x89PNG fake"
    md = (tmp_path / "r" / "report.md").read_text()
    assert "| mAP50-95 | 0.5000 |" in md and "| ray | 0.6000 | [0.4000, 0.8000]" in md
    assert "| background | 4 | 0 |" in md
    html = (tmp_path / "r" / "report.html").read_text()
    assert "src='data:image/png;base64,iVBORyBmYWtl'" in html
    assert EvaluationReport.load(tmp_path / "r" / "report.json").summary["mAP50"] == 0.7


def test_report_load_rejects_other_json(tmp_path):
    f = tmp_path / "x.json"
    f.write_text('{"a": 1}')
    with pytest.raises(DataError, match="not an evaluation report"):
        EvaluationReport.load(f)
    f.write_bytes(b'{"summary": "\xff"}')  # not UTF-8: an error naming the file, not a traceback
    with pytest.raises(DataError, match="cannot read evaluation report"):
        EvaluationReport.load(f)


def test_clean_json():
    assert clean_json({"a": [float("inf"), np.float32(1.5)], 1: np.int64(2)}) == {"a": [None, 1.5], "1": 2}
