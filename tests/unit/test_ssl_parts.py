"""MoCo v3 pieces: loss, schedules, the unlabelled pool, augmentations, the k-NN probe."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from marauder.config.sections.training import SSLAugmentations
from marauder.errors import DataError
from marauder.ssl.augment import RandomHaze, two_view_transform
from marauder.ssl.data import UnlabelledImages, collate_views, collect_images
from marauder.ssl.moco import MoCoV3, contrastive_loss, moco_v3_step
from marauder.ssl.pretrain import learning_rate_at, select_device
from marauder.ssl.probe import knn_accuracy, labelled_crops


def test_contrastive_loss_is_low_when_each_query_matches_its_key_and_scaled_by_2t():
    q = torch.eye(8) * 5
    aligned = contrastive_loss(q, q, temperature=0.2)
    shuffled = contrastive_loss(q, q.roll(1, dims=0), temperature=0.2)
    # orthonormal rows: positive logit 1/T, seven negatives at 0
    assert aligned.item() == pytest.approx(math.log(1 + 7 * math.exp(-5)) * 0.4, rel=1e-4)
    assert shuffled.item() > 1.0
    # uniform logits: cross-entropy = log(N), times 2*T
    same = torch.ones(4, 3)
    assert contrastive_loss(same, same, 0.5).item() == pytest.approx(math.log(4) * 1.0, rel=1e-5)


def test_moco_v3_step_gives_gradients_to_the_query_side_only():
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 16))
    model = MoCoV3(backbone, 16, hidden_dim=32, proj_dim=8)
    x0, x1 = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    moco_v3_step(model, x0, x1, 0.2).backward()
    assert model.backbone[1].weight.grad is not None
    assert model.prediction_head.layers[0].weight.grad is not None
    assert all(p.grad is None and not p.requires_grad for p in model.backbone_momentum.parameters())
    before = model.backbone_momentum[1].weight.clone()
    with torch.no_grad():
        model.backbone[1].weight.add_(1.0)
    model.update_momentum(0.9)
    moved = model.backbone_momentum[1].weight
    assert torch.allclose(moved, before * 0.9 + model.backbone[1].weight * 0.1)


@pytest.mark.parametrize("step, expected", [(0, 0.25), (3, 1.0), (4, 1.0), (9, 0.0)])
def test_learning_rate_warms_up_linearly_then_decays_by_cosine(step, expected):
    assert learning_rate_at(step, total=10, warmup=4, peak=1.0) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("device, expected", [("cpu", "cpu"), (0, "cuda:0"), ([1, 2], "cuda:1"), ("1", "cuda:1"),
                                             ("2,3", "cuda:2")])
def test_select_device(device, expected):
    assert str(select_device(device)) == expected


def _write_images(folder, n, size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"im{i}.png")


def test_collect_images_recurses_dedupes_and_caps(tmp_path):
    _write_images(tmp_path / "a" / "sub", 3)
    _write_images(tmp_path / "b", 2)
    paths = collect_images([tmp_path / "a", tmp_path / "b", tmp_path / "a"])
    assert len(paths) == 5
    capped = collect_images([tmp_path / "a", tmp_path / "b"], max_images=2, seed=1)
    assert len(capped) == 2 and capped == collect_images([tmp_path / "a", tmp_path / "b"], max_images=2, seed=1)


def test_collect_images_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no unlabelled images found in .*empty"):
        collect_images([tmp_path / "empty", tmp_path / "missing"])


def test_corrupt_images_are_skipped_and_reported(tmp_path):
    _write_images(tmp_path, 2)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    paths = sorted(tmp_path.iterdir())
    ds = UnlabelledImages(paths, two_view_transform(SSLAugmentations(), 32))
    v0, v1, bad = collate_views([ds[i] for i in range(len(ds))])
    assert v0.shape == v1.shape == (2, 3, 32, 32)
    assert [paths[i].name for i in bad] == ["broken.jpg"]


def test_haze_blends_towards_water_colour():
    img = Image.new("RGB", (8, 8), (255, 255, 255))
    assert RandomHaze(0.0)(img) is img
    hazy = np.asarray(RandomHaze(1.0, strength=(0.5, 0.5))(img))
    assert hazy.max() < 255 and hazy[..., 0].mean() < hazy[..., 2].mean() + 80  # darker, tinted


def test_knn_accuracy_separable_vs_random():
    feats = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0]] * 5 + [[0.0, 1.0]] * 5), dim=1)
    labels = [0] * 5 + [1] * 5
    assert knn_accuracy(feats, labels, k=3) == 1.0
    assert knn_accuracy(feats, [0, 1] * 5, k=3) < 0.7


def test_labelled_crops_include_boxes_and_background(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "lbl").mkdir()
    Image.new("RGB", (100, 100), (10, 80, 120)).save(tmp_path / "img" / "a.jpg")
    (tmp_path / "lbl" / "a.txt").write_text("2 0.2 0.2 0.2 0.2\n")
    crops, labels = labelled_crops([(tmp_path / "img", tmp_path / "lbl")])
    assert labels == [2, -1]
    assert crops[0].size == (20, 20)


def test_unreadable_last_checkpoint_is_a_clear_error(tmp_path):
    from marauder.ssl.pretrain import _load_resume

    last = tmp_path / "last_moco.pth"
    last.write_bytes(b"truncated")
    with pytest.raises(DataError, match="last_moco.pth: cannot read it to resume"):
        _load_resume(last, "yolov8n")


def test_unknown_device_is_a_config_error():
    from marauder.errors import ConfigError

    with pytest.raises(ConfigError, match="general.device: 'gpu' is not a device"):
        select_device("gpu")


def test_collect_images_leaves_out_the_test_split(tmp_path):
    from marauder.fsio import sha256_file

    _write_images(tmp_path / "pool", 4)
    test_sha = {sha256_file(tmp_path / "pool" / "im2.png")}  # the same bytes sit in the test split
    assert sorted(p.name for p in collect_images([tmp_path / "pool"], exclude_sha256=test_sha)) == [
        "im0.png", "im1.png", "im3.png"]


def _unit(rows):
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=1)


@pytest.mark.parametrize(("query_labels", "expected"), [([0, 1], 1.0), ([1, 0], 0.0), ([0, 0], 0.5)])
def test_knn_probe_asks_val_crops_of_a_train_bank(query_labels, expected):
    from marauder.ssl.probe import knn_transfer_accuracy

    bank = _unit([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]])
    queries = _unit([[0.95, 0.05], [0.05, 0.95]])
    assert knn_transfer_accuracy(bank, [0, 0, 1, 1], queries, query_labels, k=2) == expected



def test_defaults_are_moco_v3s_resnet_recipe():
    """Chen, Xie & He 2021 (ResNet-50, 100 epochs): LARS, lr 0.6 per 256 (9.6 at batch 4096), wd 1e-6,
    T = 1.0, momentum 0.99 -> 1, 10 warm-up epochs, 4096/256 MLPs; BYOL's asymmetric views."""
    from marauder.config.sections.training import SSLPretrainingConfig

    cfg = SSLPretrainingConfig()
    assert (cfg.optimizer, cfg.learning_rate, cfg.weight_decay, cfg.temperature) == ("lars", 0.6, 1e-6, 1.0)
    assert (cfg.momentum_start, cfg.momentum_end, cfg.warmup_epochs) == (0.99, 1.0, 10)
    assert (cfg.hidden_dim, cfg.projection_dim) == (4096, 256)
    a = cfg.augmentations
    assert (a.crop_min_scale, a.brightness, a.contrast, a.saturation, a.hue) == (0.08, 0.4, 0.4, 0.2, 0.1)
    assert (a.blur_prob, a.blur_prob_second, a.solarize_prob, a.grayscale_prob) == (1.0, 0.1, 0.2, 0.2)


def test_no_weight_decay_on_biases_and_norms():
    from lightly.utils.lars import LARS

    from marauder.ssl.pretrain import make_optimizer

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 2))
    opt = make_optimizer(model, "lars", 0.1, 1e-6)
    assert isinstance(opt, LARS)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    for p in model.parameters():
        assert (id(p) in decayed) == (p.ndim > 1)
    assert isinstance(make_optimizer(model, "sgd", 0.1, 1e-6), torch.optim.SGD)


def _view_parts(view):
    import torchvision.transforms as T

    jitter = next(t for t in view.transforms if isinstance(t, T.RandomApply)).transforms[0]
    gray = next(t for t in view.transforms if isinstance(t, T.RandomGrayscale))
    solarize = next(t for t in view.transforms if isinstance(t, T.RandomSolarize))
    blur = next(t for t in view.transforms if type(t).__name__ == "GaussianBlur")
    return jitter, gray, solarize, blur


@pytest.mark.parametrize("preserve", [False, True])
def test_views_are_asymmetric_and_colour_can_be_kept(preserve):
    views = two_view_transform(SSLAugmentations(preserve_colour=preserve), 32).transforms
    (j1, g1, s1, b1), (j2, g2, s2, b2) = (_view_parts(v) for v in views)
    assert (b1.prob, s1.p) == (1.0, 0.0) and (b2.prob, s2.p) == (0.1, 0.2)
    assert (j1.hue in (None, (0.0, 0.0))) == preserve and (g1.p == 0.0) == preserve


def test_views_are_in_the_detectors_input_scale():
    img = Image.fromarray(np.full((40, 40, 3), 255, dtype=np.uint8))
    v0, v1 = two_view_transform(SSLAugmentations(color_jitter_prob=0, haze_prob=0, solarize_prob=0), 32)(img)
    assert 0.0 <= float(v0.min()) and float(v0.max()) <= 1.0  # [0, 1] like Ultralytics, not mean/std
