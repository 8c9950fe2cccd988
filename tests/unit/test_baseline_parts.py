"""Baseline plumbing: dataset checks, accumulation mapping, device lists, retention, resume, lr-find maths."""

from __future__ import annotations

import math

import pytest

from marauder.config.sections.general import WandbConfig
from marauder.errors import DataError, MissingInputError
from marauder.train.baseline import accumulation_nbs, check_dataset_yaml, ultralytics_device
from marauder.train.common import double_until_failure, pick_resume, prune_checkpoints, wandb_mode
from marauder.train.lr_find import smooth, steepest_descent


def _dataset(tmp_path, yaml_text, splits=("train", "val")):
    for s in splits:
        (tmp_path / "images" / s).mkdir(parents=True)
        (tmp_path / "images" / s / "a.jpg").write_bytes(b"x")
    path = tmp_path / "dataset.yaml"
    path.write_text(yaml_text)
    return path


def test_dataset_yaml_ok_returns_names(tmp_path):
    p = _dataset(tmp_path, "path: .\ntrain: images/train\nval: images/val\nnames:\n  0: fish\n  1: ray\n")
    assert check_dataset_yaml(p) == ["fish", "ray"]


@pytest.mark.parametrize("text, match", [
    ("path: .\ntrain: images/train\nnames: [fish]\n", "split 'val' is missing"),
    ("path: .\ntrain: images/train\nval: images/val\ntest: images/test\nnames: [fish]\n",
     r"dataset.yaml:4: split 'test': .*images/test has no images"),
    ("path: .\ntrain: images/train\nval: images/val\n", "no class names"),
    ("train: [unclosed\n", "not valid YAML"),
])
def test_dataset_yaml_problems_are_named(tmp_path, text, match):
    with pytest.raises(DataError, match=match):
        check_dataset_yaml(_dataset(tmp_path, text))


def test_dataset_yaml_missing_names_the_command(tmp_path):
    with pytest.raises(MissingInputError, match="marauder organize"):
        check_dataset_yaml(tmp_path / "dataset.yaml")


@pytest.mark.parametrize("batch, steps, accumulate", [(16, 4, 4), (8, 2, 2), (5, 3, 3)])
def test_accumulation_maps_to_ultralytics_nbs(batch, steps, accumulate):
    nbs = accumulation_nbs(batch, steps)
    assert max(round(nbs / batch), 1) == accumulate  # Ultralytics' own formula
    assert batch * accumulate / nbs == 1.0  # weight decay left unscaled


@pytest.mark.parametrize("batch", [8, 16, 64])
def test_no_accumulation_asked_keeps_ultralytics_nominal_batch(batch):
    assert accumulation_nbs(batch, 1) is None  # nbs 64 stands: Ultralytics' optimizer step count, unchanged


@pytest.mark.parametrize("device, expected", [("auto", None), ("cpu", "cpu"), (0, "0"), ([0, 1, 3], "0,1,3")])
def test_device_list_becomes_ultralytics_ddp_string(device, expected):
    assert ultralytics_device(device) == expected


@pytest.mark.parametrize("capacity, start, expected", [(100, 16, 64), (16, 16, 16), (8, 16, None), (10_000, 16, 1024)])
def test_double_until_failure(capacity, start, expected):
    assert double_until_failure(lambda b: b <= capacity, start, 1024) == expected


def test_prune_keeps_newest_epochs(tmp_path):
    for e in (1, 2, 10, 3):
        (tmp_path / f"epoch{e}.pt").write_bytes(b"x")
    (tmp_path / "best.pt").write_bytes(b"x")
    removed = prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in removed) == ["epoch1.pt", "epoch2.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "epoch10.pt", "epoch3.pt"]


def test_pick_resume(tmp_path):
    last = tmp_path / "last.pt"
    assert pick_resume(None, last, lambda p: True) is None
    last.write_bytes(b"x")
    assert pick_resume(None, last, lambda p: True) == last
    assert pick_resume(None, last, lambda p: False) is None
    with pytest.raises(DataError, match="does not exist"):
        pick_resume(tmp_path / "nope.pt", last, lambda p: True)
    with pytest.raises(DataError, match="already finished"):
        pick_resume(last, last, lambda p: False)


@pytest.mark.parametrize("cfg, env, expected", [
    (WandbConfig(enabled=False), {}, "disabled"),
    (WandbConfig(enabled=True), {"WANDB_MODE": "disabled"}, "disabled"),
    (WandbConfig(enabled=True, mode="offline"), {}, "offline"),
    (WandbConfig(enabled=True), {"WANDB_API_KEY": "k"}, "online"),
    (WandbConfig(enabled=True), {}, "offline"),
])
def test_wandb_never_prompts(monkeypatch, tmp_path, cfg, env, expected):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert wandb_mode(cfg) == expected


def test_steepest_descent_finds_the_falling_part():
    lrs = [10 ** (-6 + 6 * i / 99) for i in range(100)]
    # flat, then falls fastest around 1e-3, then explodes
    losses = [2.0 - 1.5 / (1 + math.exp(-(math.log10(lr) + 3) * 4)) + (5 if lr > 0.1 else 0) for lr in lrs]
    suggestion = steepest_descent(lrs, losses)
    assert 1e-4 < suggestion < 1e-2
    assert smooth([1.0, 1.0, 1.0]) == pytest.approx([1.0, 1.0, 1.0])


def test_steepest_descent_needs_enough_steps():
    with pytest.raises(DataError, match="only 3 steps"):
        steepest_descent([1e-3, 1e-2, 1e-1], [1.0, 0.9, 0.8])


def test_pick_resume_falls_back_to_the_mirrored_copy(tmp_path):
    torn, mirror = tmp_path / "run_last.pt", tmp_path / "ckpt_last.pt"
    torn.write_bytes(b"half")
    mirror.write_bytes(b"whole")
    assert pick_resume(None, [torn, mirror], lambda p: p.read_bytes() == b"whole") == mirror


def test_lr_find_steps_below_the_minimum_is_a_one_line_error(tmp_path, capsys):
    from marauder.cli import main

    assert main(["lr-find", "--workspace", str(tmp_path), "--steps", "3", "general.device=cpu"]) == 2
    assert "--steps 3: Input should be greater than or equal to 10" in capsys.readouterr().err
    assert not (tmp_path / "logs").exists()


def test_epoch_callbacks_survive_the_ddp_launchers_pickling(tmp_path):
    """Ultralytics' DDP (general.device: [0, 1]) cloudpickles the trainer callbacks into its worker."""
    cloudpickle = pytest.importorskip("cloudpickle")
    from marauder.config.sections.general import LoggingConfig
    from marauder.engines.ultralytics.callbacks import track_epochs
    from marauder.train.common import Tracker

    tracker = Tracker(tmp_path / "m.jsonl", LoggingConfig(tensorboard=True), tb_dir=tmp_path / "tb")
    try:
        clone = cloudpickle.loads(cloudpickle.dumps(track_epochs(tracker, tmp_path / "out.jsonl")))
    finally:
        tracker.close()
    worker_tracker = next(c.cell_contents for c in clone.__closure__ if isinstance(c.cell_contents, Tracker))
    worker_tracker.log({"loss": 1.5}, step=1)  # the worker reopened its own TensorBoard writer
    worker_tracker.close()
    assert any((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert '"loss": 1.5' in (tmp_path / "m.jsonl").read_text()


class _RecordingYolo:
    """Stands in for Ultralytics' YOLO object: records the arguments train() receives."""

    def __init__(self, run_dir):
        self.kwargs, self.trainer = {}, type("T", (), {"save_dir": run_dir, "metrics": {}})()

    def add_callback(self, *a):
        pass

    def train(self, **kwargs):
        self.kwargs = kwargs


@pytest.mark.parametrize("deterministic", [True, False])
def test_deterministic_follows_the_config(deterministic, tmp_path, monkeypatch):
    from marauder.engines.ultralytics import train as engine

    yolo = _RecordingYolo(tmp_path / "run")
    monkeypatch.setattr(engine, "load_yolo", lambda source: yolo)
    engine.train_detector("yolov8n.yaml", tmp_path / "d.yaml", tmp_path / "run", epochs=1, imgsz=32,
                          deterministic=deterministic)
    assert yolo.kwargs["deterministic"] is deterministic
    assert "nbs" not in yolo.kwargs  # nothing but what was asked reaches Ultralytics
