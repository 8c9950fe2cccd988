"""One spec type for pipeline_config.yaml and deployment_config.yaml (marauder.runtime.spec).

Each bad document below is refused by both readers with the same dotted key and message: the
training side's (with the file line) and the vehicle's (every problem at once)."""

from __future__ import annotations

import copy

import pytest
import yaml

from marauder.errors import ConfigError
from marauder.infer.pipeline_spec import load_pipeline_spec
from marauder.runtime.config import validate as validate_package_config
from marauder.runtime.errors import PackageError
from marauder.runtime.spec import PipelineSpec, SpecError, parse_spec
from marauder.runtime.tta import views_from_config

GOOD = {
    "class_names": ["fish", "ray"],
    "imgsz": 320,
    "models": [{"name": "a", "path": "a.onnx", "onnx": "models/a.onnx"},
               {"name": "b", "path": "b.onnx", "onnx": "models/b.onnx"}],
    "tta": {"enabled": True, "hflip": True},
    "fusion": {"method": "wbf", "weights": [2.0, 1.0]},
    "calibration": {"fish": {"method": "temperature", "t": 1.5}, "__pooled__": {"method": "identity"}},
    "thresholds": {"fish": 0.3, "ray": 0.1},
}


def _set(path: str, value):
    def change(doc):
        *parents, last = path.split(".")
        node = doc
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if value is KeyError:
            del node[last]
        else:
            node[int(last) if isinstance(node, list) else last] = value
    return change


@pytest.mark.parametrize(("change", "key", "message", "line_has"), [
    (_set("class_names", KeyError), "class_names", "missing", None),
    (_set("imgsz", "640"), "imgsz", "must be an integer >= 32", "imgsz:"),
    (_set("imgsz", 16), "imgsz", "must be an integer >= 32", "imgsz:"),
    (_set("raw_confidence", 2.0), "raw_confidence", r"must be in \[0.0, 1.0\]", "raw_confidence:"),
    (_set("colour", True), "colour", "unknown key", "colour:"),
    (_set("models.1.onnx_sha", "ab"), "models.1.onnx_sha", "unknown key", "onnx_sha:"),
    (_set("models.0.confidence_threshold", -0.1), "models.0.confidence_threshold", "must be in", "confidence"),
    (_set("models.0.name", KeyError), "models.0.name", "missing", "- path: a.onnx"),  # the model's line
    (_set("tta.rotations", [45]), "tta.rotations", r"must be a list of angles of \[90, 180, 270\]", "rotations:"),
    (_set("tta.scales", [0.0]), "tta.scales", "scales > 0", "scales:"),
    (_set("tta.enabled", "yes"), "tta.enabled", "must be true or false", "enabled:"),
    (_set("fusion.iou_threshold", 0.0), "fusion.iou_threshold", r"must be in \(0.0, 1.0\]", "iou_threshold:"),
    (_set("fusion.conf_type", "median"), "fusion.conf_type", "'median' is not one of", "conf_type:"),
    (_set("fusion.weights", [0.0, 0.0]), "fusion.weights", "at least one weight must be > 0", "weights:"),
    (_set("fusion.weights", [1.0]), "fusion.weights", "1 entries for 2 models", "weights:"),
    (_set("thresholds.shark", 0.5), "thresholds", r"names unknown classes \['shark'\]", "thresholds:"),
    (_set("thresholds.ray", "high"), "thresholds.ray", r"must be a number in \[0, 1\]", "ray: high"),
    (_set("calibration.ray", {"method": "platt", "a": 1.0}), "calibration.ray", r"needs \['a', 'b'\]", "ray:"),
    (_set("version", 2), "version", "reads version 1", "version:"),
])
def test_both_readers_refuse_a_bad_spec_the_same_way(tmp_path, change, key, message, line_has):
    doc = copy.deepcopy(GOOD)
    change(doc)
    path = tmp_path / "pipeline_config.yaml"
    text = yaml.safe_dump(doc, sort_keys=False)
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as training:
        load_pipeline_spec(path)
    assert str(training.value).startswith(f"{path}") and f"{key}: " in str(training.value)
    if line_has is None:
        assert training.value.line is None
    else:
        assert line_has in text.splitlines()[training.value.line - 1]
    with pytest.raises(PackageError, match=message) as vehicle:
        validate_package_config(doc, "deployment_config.yaml")
    assert f"{key}: " in str(vehicle.value)


def test_nested_problems_point_at_their_own_line(tmp_path):
    doc = copy.deepcopy(GOOD)
    doc["models"][1]["confidence_threshold"] = 3.0
    path = tmp_path / "pipeline_config.yaml"
    text = yaml.safe_dump(doc, sort_keys=False)
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_pipeline_spec(path)
    assert err.value.line == next(i for i, line in enumerate(text.splitlines(), 1) if "confidence_threshold" in line)


def test_a_spec_built_in_code_is_checked_too():
    with pytest.raises(SpecError, match="thresholds.fish: must be a number"):
        PipelineSpec(class_names=["fish"], models=[], thresholds={"fish": 7})


def test_round_trip_and_nothing_implied(tmp_path):
    spec = parse_spec(GOOD)
    assert spec.fusion["iou_threshold"] == 0.55 and spec.tta["vflip"] is False  # defaults filled in
    path = tmp_path / "pipeline_config.yaml"
    path.write_text(yaml.safe_dump(spec.to_mapping(package=False)))
    assert load_pipeline_spec(path) == spec
    assert "nms_iou" not in spec.to_mapping(package=False) and spec.to_mapping(package=True)["nms_iou"] == 0.6
    bare = parse_spec({"class_names": ["fish"], "models": [{"name": "m", "path": "m.pt"}]})
    assert [v.name for v in views_from_config(bare.tta)] == ["identity"]  # no tta section: no extra views


def test_a_package_needs_its_onnx_files_and_input_size():
    doc = copy.deepcopy(GOOD)
    del doc["imgsz"]
    del doc["models"][0]["onnx"]
    with pytest.raises(PackageError) as err:
        validate_package_config(doc)
    assert "imgsz: missing" in str(err.value) and "models.0.onnx: missing" in str(err.value)
    assert parse_spec(doc).imgsz == 640  # the training side defaults it
