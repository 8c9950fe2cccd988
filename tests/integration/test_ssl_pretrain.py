"""MoCo v3 for real on a few tiny images: checkpoints, k-NN best selection, corrupt files, resume,
and the SSL weights landing in the detector (YOLO backbone and ResNet-50 backbone)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from fakes.datasets import make_yolo_set

from marauder.config.sections.general import GeneralConfig
from marauder.config.sections.training import BaselineYoloConfig, SSLPretrainingConfig
from marauder.errors import DataError
from marauder.ssl import load_ssl_checkpoint, run_ssl_pretrain
from marauder.workspace import Workspace

pytestmark = pytest.mark.slow
TINY = dict(epochs=2, batch_size=4, imgsz=32, hidden_dim=32, projection_dim=16, warmup_epochs=1, knn_k=3)
GENERAL = GeneralConfig(device="cpu", num_workers=0, seed=0)


@pytest.fixture(scope="module")
def ssl_workspace(tmp_path_factory) -> Workspace:
    ws = Workspace.at(tmp_path_factory.mktemp("ssl_ws"))
    make_yolo_set(ws.organized_dir)
    pool = ws.deepfish_images
    pool.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(8):
        cv2.imwrite(str(pool / f"frame{i}.jpg"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    (pool / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return ws


@pytest.fixture(scope="module")
def yolo_ssl(ssl_workspace):
    ws = ssl_workspace
    cfg = SSLPretrainingConfig(backbone="yolov8n", **TINY)
    labelled = [(ws.organized_images("train"), ws.organized_labels("train"))]
    return run_ssl_pretrain(cfg, GENERAL, ws.checkpoints("ssl"), ws.unlabelled_dirs, labelled=labelled)


def test_pretrain_writes_checkpoints_metrics_and_counts_corrupt(yolo_ssl, ssl_workspace):
    r = yolo_ssl
    assert r.best == ssl_workspace.ssl_best and r.last == ssl_workspace.ssl_last
    assert r.images == 9 and r.skipped_images == 1
    assert r.best_metric["name"] == "knn_accuracy" and 0.0 <= r.best_metric["value"] <= 1.0
    assert [h["epoch"] for h in r.history] == [1, 2]
    assert all(np.isfinite(h["loss"]) for h in r.history)
    lines = (ssl_workspace.checkpoints("ssl") / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and '"knn_accuracy"' in lines[0]
    ckpt = load_ssl_checkpoint(r.best)
    assert ckpt.backbone == "yolov8n" and ckpt.prefix == "" and "model.0.conv.weight" in ckpt.encoder


def test_restart_resumes_from_last(yolo_ssl, ssl_workspace):
    before = torch.load(yolo_ssl.last, weights_only=True)["encoder"]["model.0.conv.weight"]
    cfg = SSLPretrainingConfig(backbone="yolov8n", **{**TINY, "epochs": 3})
    r = run_ssl_pretrain(cfg, GENERAL, ssl_workspace.checkpoints("ssl"), ssl_workspace.unlabelled_dirs)
    assert [h["epoch"] for h in r.history] == [1, 2, 3]  # epochs 1-2 carried over, one more trained
    after = torch.load(r.last, weights_only=True)["encoder"]["model.0.conv.weight"]
    assert not torch.equal(before, after)


def test_last_from_another_backbone_is_refused(yolo_ssl, ssl_workspace):
    cfg = SSLPretrainingConfig(backbone="yolov8s", **TINY)
    with pytest.raises(DataError, match="holds backbone 'yolov8n' but ssl_pretraining.backbone is 'yolov8s'"):
        run_ssl_pretrain(cfg, GENERAL, ssl_workspace.checkpoints("ssl"), ssl_workspace.unlabelled_dirs)


def test_empty_unlabelled_folder_fails_before_training(tmp_path):
    (tmp_path / "pool").mkdir()
    cfg = SSLPretrainingConfig(backbone="yolov8n", **TINY)
    with pytest.raises(DataError, match="no unlabelled images found"):
        run_ssl_pretrain(cfg, GENERAL, tmp_path / "out", [tmp_path / "pool"])
    assert not (tmp_path / "out").exists()


def test_ssl_weights_reach_the_detector_that_ultralytics_trains(yolo_ssl, ssl_workspace, tmp_path):
    """The init checkpoint holds the SSL encoder, and the model Ultralytics' trainer builds from it
    (checked before the first optimizer step) has the same backbone tensors."""
    from marauder.engines.ultralytics.train import train_detector
    from marauder.train.baseline import initialise_detector

    cfg = BaselineYoloConfig(model_size="yolov8n", ssl_checkpoint=str(yolo_ssl.best))
    init, report = initialise_detector(cfg, GENERAL, ["fish"], ssl_workspace, tmp_path / "init.pt")
    loaded = report["transfers"][-1]["tensors_loaded"]  # the SSL backbone, over the pretrained start
    encoder = load_ssl_checkpoint(yolo_ssl.best).encoder
    assert loaded == sum(1 for k in encoder if not k.endswith("num_batches_tracked")) > 50

    seen = {}

    def capture(trainer):
        seen.update({k: v.detach().cpu().clone() for k, v in trainer.model.state_dict().items()})
        trainer.stop = True

    train_detector(init, ssl_workspace.dataset_yaml, tmp_path / "run", epochs=1, imgsz=32, batch=4,
                   device="cpu", workers=0, amp=False, callbacks={"on_pretrain_routine_end": [capture]})
    mismatched = [k for k, v in encoder.items() if not k.endswith("num_batches_tracked")
                  and not torch.allclose(seen[k].float(), v.float(), atol=1e-6)]
    assert seen and not mismatched


def test_resnet50_ssl_checkpoint_loads_into_a_resnet50_yolo_detector(ssl_workspace, tmp_path):
    from marauder.engines.ultralytics.models import load_yolo
    from marauder.ssl.checkpoint import save_checkpoint
    from marauder.ssl.moco import build_encoder
    from marauder.train.baseline import initialise_detector

    torch.manual_seed(3)
    encoder, dim, prefix = build_encoder("resnet50")
    ckpt = save_checkpoint(tmp_path / "r50.pth", {"backbone": "resnet50", "feature_dim": dim, "epoch": 1,
                                                   "encoder": encoder.state_dict(), "encoder_prefix": prefix})
    cfg = BaselineYoloConfig(model_size="yolov8n", ssl_checkpoint=str(ckpt))
    init, report = initialise_detector(cfg, GENERAL, ["fish"], ssl_workspace, tmp_path / "init.pt")
    assert report["transfers"][-1]["tensors_loaded"] == 265  # every conv/bn tensor of ResNet-50's stem and four stages
    detector = load_yolo(init).model.state_dict()
    for key, value in encoder.state_dict().items():
        assert torch.equal(detector[prefix + key].float(), value.float()), key


def test_checkpoint_from_another_backbone_is_a_clear_error(yolo_ssl, ssl_workspace, tmp_path):
    from marauder.train.baseline import initialise_detector

    cfg = BaselineYoloConfig(model_size="yolov8s", ssl_checkpoint=str(yolo_ssl.best))
    with pytest.raises(DataError, match=r"backbone 'yolov8n' does not fit the 'yolov8s' detector: \d+ of \d+"):
        initialise_detector(cfg, GENERAL, ["fish"], ssl_workspace, tmp_path / "init.pt")
    assert not (tmp_path / "init.pt").exists()


def test_cli_with_no_unlabelled_images_exits_2_and_writes_nothing(tmp_path, capsys):
    from marauder.cli import main

    (tmp_path / "data" / "deepfish" / "images").mkdir(parents=True)
    assert main(["ssl-pretrain", "--workspace", str(tmp_path), "general.device=cpu"]) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "no unlabelled images found" in err and "extra_unlabelled_dirs" in err
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "logs").exists()
