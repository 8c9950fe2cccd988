"""The ImageNet-backbone detector (EfficientNet-Lite0 under a YOLOv8n neck) trains, reloads in a fresh
process, exports to ONNX, matches the edge runtime, and quantizes to INT8."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from marauder.fsio import list_images

IMGSZ = 64


@pytest.fixture(scope="module")
def lite_model(organized_sample, tmp_path_factory) -> Path:
    import torch

    from marauder.engines.ultralytics.backbone import save_init_checkpoint
    from marauder.engines.ultralytics.pretrained import Start, initial_detector
    from marauder.engines.ultralytics.train import dataset_names, train_detector

    root = tmp_path_factory.mktemp("lite")
    names = dataset_names(organized_sample / "dataset.yaml")
    torch.manual_seed(0)
    model, transfer = initial_detector(Start("imagenet", "imagenet", "yolov8n+efficientnet_lite0", None, "test"),
                                       len(names), allow_partial=False, key="test")
    assert transfer.backbone_fraction == 1.0
    init = save_init_checkpoint(model, root / "init.pt", names)
    result = train_detector(init, organized_sample / "dataset.yaml", root / "run", epochs=1, imgsz=IMGSZ, batch=8,
                            device="cpu", workers=0, amp=False)
    return result.best


@pytest.mark.slow
def test_the_trained_detector_keeps_its_backbone_and_reloads_in_a_fresh_process(lite_model):
    # Unpickling imports our module, which registers the layer: the trainer's rebuild from the yaml then works
    code = (f"from ultralytics import YOLO; from ultralytics.nn.tasks import DetectionModel; m = YOLO(r'{lite_model}'); "
            "DetectionModel(m.model.yaml, verbose=False); "
            "print(type(m.model.model[0]).__name__, len(m.model.yaml['backbone']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["EfficientNetLite0", "4"]


@pytest.mark.slow
def test_onnx_export_matches_pytorch_and_the_edge_runtime(lite_model, organized_sample, tmp_path):
    from test_runtime_parity import _ultralytics_vs_runtime  # same folder: pytest puts it on sys.path

    from marauder.engines.ultralytics.export import export_onnx, torch_raw_output
    from marauder.export.quantize import quantize_int8
    from marauder.runtime.preprocess import letterbox, to_blob

    onnx_path = export_onnx(lite_model, tmp_path / "lite.onnx", imgsz=IMGSZ)["path"]
    images = [cv2.imread(str(p)) for p in list_images(organized_sample / "images" / "test")[:6]]
    blob = to_blob([letterbox(im, (IMGSZ, IMGSZ))[0] for im in images[:2]])

    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    raw_onnx = np.concatenate([session.run(None, {"images": blob[i:i + 1]})[0] for i in range(len(blob))])
    raw_torch = torch_raw_output(lite_model, blob)
    assert raw_onnx.shape == raw_torch.shape
    assert np.abs(raw_onnx - raw_torch).max() < 1e-3  # the exported graph computes what PyTorch computes

    _ultralytics_vs_runtime(onnx_path, images, imgsz=IMGSZ)  # the edge runtime decodes it like Ultralytics

    int8 = quantize_int8(onnx_path, tmp_path / "lite_int8.onnx", images, IMGSZ)
    session8 = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    raw8 = session8.run(None, {"images": blob[:1]})[0]
    assert raw8.shape == raw_onnx[:1].shape and np.isfinite(raw8).all()
    box_error = np.abs(raw8[0, :4] - raw_onnx[0, :4]).mean()
    assert box_error < 0.05 * IMGSZ  # INT8 boxes stay close to FP32 ones (mean error in pixels)
