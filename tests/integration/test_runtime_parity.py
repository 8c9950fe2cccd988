"""Parity: the edge runtime detects what the Python side detects.

1. One model: the runtime's Detector on an ONNX export vs Ultralytics' own predict on the same ONNX.
2. The whole calibrated pipeline (2 models x hflip TTA -> WBF/NMS -> calibration -> thresholds):
   EdgePipeline from a deployment package vs marauder.infer's PipelinePredictor on pipeline_config.yaml.
Boxes within 1 px, same classes, scores within 1e-3.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from marauder.fsio import list_images

IMGSZ = 64


@pytest.fixture(scope="module")
def tiny_onnx(tiny_model, tmp_path_factory) -> Path:
    from marauder.engines.ultralytics.export import export_onnx

    out = tmp_path_factory.mktemp("parity_onnx") / "tiny.onnx"
    return export_onnx(tiny_model, out, imgsz=IMGSZ)["path"]


def test_images(organized_sample, shared_data=None) -> list[np.ndarray]:
    return [cv2.imread(str(p)) for p in list_images(organized_sample / "images" / "test")[:8]]


test_images.__test__ = False  # a helper, not a test


def assert_same(ours, theirs_xyxy, theirs_scores, theirs_cls):
    assert len(ours.scores) == len(theirs_scores)
    if len(theirs_scores):
        assert np.abs(ours.xyxy - theirs_xyxy).max() <= 1.0
        assert np.abs(ours.scores - theirs_scores).max() <= 1e-3
        assert np.array_equal(ours.class_ids, theirs_cls)


def _ultralytics_vs_runtime(onnx_path, images, imgsz=IMGSZ):
    from ultralytics import YOLO

    from marauder.infer.onnx_predictor import OnnxPredictor

    reference = YOLO(str(onnx_path), task="detect")
    ours = OnnxPredictor(onnx_path, conf=0.001, iou=0.6)
    total = 0
    for image in images:
        r = reference.predict(image, imgsz=imgsz, conf=0.001, iou=0.6, verbose=False)[0]
        d = ours.predict([image])[0]
        assert d.image_size == image.shape[:2]
        assert_same(d, r.boxes.xyxy.numpy(), r.boxes.conf.numpy(), r.boxes.cls.numpy().astype(int))
        total += len(d)
    return total


def test_detector_matches_ultralytics_on_sample_images(tiny_onnx, organized_sample):
    total = _ultralytics_vs_runtime(tiny_onnx, test_images(organized_sample))
    assert total > 0  # the comparison covered real detections


def test_detector_matches_ultralytics_on_real_underwater_images(tiny_onnx, shared_data):
    images = [cv2.imread(str(p)) for p in list_images(shared_data / "underwater-det" / "images")[:4]]
    images += [cv2.imread(str(p)) for p in list_images(shared_data / "deepfish-det" / "images")[:4]]
    _ultralytics_vs_runtime(tiny_onnx, images)


@pytest.mark.parametrize("method", ["wbf", "nms"])
def test_edge_pipeline_matches_python_pipeline(tiny_onnx, organized_sample, tmp_path, method):
    from marauder.config.sections.deploy import DeploymentConfig, ExportConfig
    from marauder.export.deployment_config import build_deployment_config, choices_from_pipeline
    from marauder.export.package import build_package
    from marauder.infer.pipeline_predictor import PipelinePredictor
    from marauder.runtime.pipeline import EdgePipeline

    names = yaml.safe_load((organized_sample / "dataset.yaml").read_text())["names"]
    names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    spec = {
        # the 2-epoch fixture model scores ~1e-3: low raw thresholds, and calibrators that spread the
        # calibrated scores over 0.1-0.4 so the 1e-3 score tolerance means something
        "class_names": names, "imgsz": IMGSZ, "raw_confidence": 0.0001, "calibrator": None,
        "models": [{"name": "a", "path": str(tiny_onnx), "confidence_threshold": 0.0001},
                   {"name": "b", "path": str(tiny_onnx), "confidence_threshold": 0.0003}],
        "tta": {"enabled": True, "hflip": True, "vflip": False, "rotations": [90], "scales": [1.0, 0.75]},
        "fusion": {"method": method, "iou_threshold": 0.5, "skip_box_threshold": 0.0001, "weights": [2.0, 1.0],
                   "conf_type": "avg"},
        "calibration": {names[0]: {"method": "temperature", "t": 4.0},
                        "__pooled__": {"method": "platt", "a": 0.5, "b": 2.0}},
        "thresholds": {names[0]: 0.12, names[1]: 0.15},
    }
    spec_path = tmp_path / "pipeline_config.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    python = PipelinePredictor(spec_path, apply_thresholds=True)

    choices = choices_from_pipeline(spec_path, ["a", "b"])
    models = [{"name": n, "onnx": f"models/{n}.onnx"} for n in ("a", "b")]
    config = build_deployment_config(class_names=names, imgsz=IMGSZ, models=models, choices=choices,
                                     export_cfg=ExportConfig(), deploy_cfg=DeploymentConfig(), nms_iou=0.6,
                                     check_images=[])
    pkg = build_package(tmp_path / "pkg", onnx_files={"a": tiny_onnx, "b": tiny_onnx}, engine_files={},
                        config=config, check_images=[])
    edge = EdgePipeline(pkg, backend="onnx")
    assert len(edge.views) == 4 and edge.backend_kind == "onnx"

    images = test_images(organized_sample)
    total = 0
    for ours, theirs in zip(edge.predict(images), python.predict(images)):
        assert_same(ours, theirs.xyxy, theirs.scores, theirs.class_ids)
        total += len(theirs)
        assert (theirs.scores > 0.05).all()  # calibrated, thresholded scores
    assert total > 0


def test_load_predictor_routes_onnx_to_the_runtime(tiny_onnx, tiny_model):
    from marauder.engines.ultralytics.models import class_names_of, load_yolo
    from marauder.infer.onnx_predictor import OnnxPredictor
    from marauder.infer.predictor import load_predictor

    predictor = load_predictor(tiny_onnx, conf=0.001, iou=0.6)
    assert isinstance(predictor, OnnxPredictor)
    assert predictor.class_names == class_names_of(load_yolo(tiny_model))
    assert predictor.predict([]) == []


def test_scale_views_agree_across_backends(tiny_model, tiny_onnx, organized_sample):
    """A 0.5x view runs on the .pt and on the fixed-size ONNX export alike."""
    from marauder.engines.ultralytics.predict import UltralyticsPredictor
    from marauder.infer.onnx_predictor import OnnxPredictor
    from marauder.runtime.tta import View, predict_views

    images = test_images(organized_sample)
    views = [View(), View(scale=0.5)]
    pt = predict_views(UltralyticsPredictor(tiny_model, imgsz=IMGSZ, conf=0.001, iou=0.6), images, views)
    onnx = predict_views(OnnxPredictor(tiny_onnx, conf=0.001, iou=0.6), images, views)
    for by_pt, by_onnx in zip(pt, onnx):
        for a, b in zip(by_pt, by_onnx):
            assert_same(b, a.xyxy, a.scores, a.class_ids)
    # (the 2-epoch fixture model predicts one image-sized box whatever it sees, so that the view gives
    # the model another input is tested on pixels, in tests/unit/test_tta.py)


def test_an_upscaled_view_on_a_fixed_size_export_is_a_clear_error(tiny_onnx, organized_sample):
    from marauder.errors import MarauderError
    from marauder.infer.onnx_predictor import OnnxPredictor
    from marauder.runtime.tta import View, predict_views

    with pytest.raises(MarauderError, match="fixed 64x64 input.*dynamic"):
        predict_views(OnnxPredictor(tiny_onnx), test_images(organized_sample)[:1], [View(), View(scale=1.5)])


@pytest.mark.parametrize(("scales", "deploy_tta", "refused"),
                         [([1.0, 1.25], None, True), ([1.0, 0.75], None, False), ([1.25], False, False)])
def test_export_refuses_tta_scales_a_fixed_input_cannot_run(scales, deploy_tta, refused):
    from marauder.config.sections.deploy import DeploymentConfig, ExportConfig
    from marauder.errors import ConfigError
    from marauder.export.deployment_config import PipelineChoices, build_deployment_config

    choices = PipelineChoices(confidence={"a": 0.01}, fusion={"method": "wbf"}, raw_confidence=0.01,
                              thresholds={"x": 0.3}, critical_species=[],
                              tta={"enabled": True, "hflip": True, "scales": scales})
    build = lambda: build_deployment_config(  # noqa: E731
        class_names=["x"], imgsz=64, models=[{"name": "a", "onnx": "models/a.onnx"}], choices=choices,
        export_cfg=ExportConfig(), deploy_cfg=DeploymentConfig(tta=deploy_tta), nms_iou=0.6, check_images=[])
    if refused:
        with pytest.raises(ConfigError, match=r"TTA scales \[1.25\].*tta.scales <= 1"):
            build()
    else:
        assert build()["tta"]["enabled"] is (deploy_tta is not False)
