"""`marauder train-critical` end to end on the sample: oversampled list, mining of planted background
decoys, two real (tiny) training iterations, per-iteration report, recall gate, resume, bad input."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from marauder.cli import main
from marauder.data.dataset import load_dataset_yaml
from marauder.train.oversample import critical_class_ids, oversampled_list, scan_train_split

SPECIES = ["lionfish", "abalone"]


def decoy_image(path: Path, seed: int, size=(120, 160)) -> None:
    """Sandy water with a red/cream banded patch: the lionfish's colours and stripes, no animal."""
    rng = np.random.default_rng(seed)
    h, w = size
    img = np.zeros((h, w, 3), np.float32)
    img[:] = (110, 85, 35)
    img += rng.normal(0, 6, img.shape)
    yy, xx = np.mgrid[0:h, 0:w]
    angle = rng.uniform(0, np.pi)
    band = ((xx * np.cos(angle) + yy * np.sin(angle)) // 6) % 2
    patch = np.zeros((h, w), bool)
    y0, x0 = int(rng.integers(0, h // 3)), int(rng.integers(0, w // 3))
    patch[y0:y0 + h // 2, x0:x0 + w // 2] = True
    img[patch & (band == 0)] = (40, 50, 170)
    img[patch & (band == 1)] = (190, 215, 235)
    cv2.imwrite(str(path), np.clip(img, 0, 255).astype(np.uint8))


def run_cli(capsys, *args) -> tuple[int, str]:
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out + out.err


@pytest.fixture()
def workspace(tmp_path, organized_sample, tiny_model) -> tuple[Path, Path]:
    ws = tmp_path / "ws"
    decoys = ws / "decoys"
    decoys.mkdir(parents=True)
    for i in range(4):
        decoy_image(decoys / f"decoy{i}.jpg", i)
    (decoys / "corrupt.jpg").write_bytes(b"\xff\xd8 truncated")  # unreadable: skipped and counted
    config = {
        "general": {"seed": 0, "device": "cpu", "mixed_precision": False, "num_workers": 0, "imgsz": 64},
        "logging": {"wandb": {"enabled": False, "mode": "disabled"}, "tensorboard": False},
        "critical_species": {
            "species": SPECIES, "base_model": str(tiny_model), "data": str(organized_sample / "dataset.yaml"),
            "oversampling": {"critical_species_ratio": 2.5},
            "hard_negative_mining": {"iterations": 2, "epochs_per_iteration": 1, "confidence": 0.001,
                                     "review_confidence": 1.0, "background_dirs": ["decoys"],
                                     "max_negatives_per_iteration": 200},
            "min_recall": 0.0, "batch_size": 16,
        },
    }
    cfg = ws / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    return ws, cfg


def test_train_critical_end_to_end(workspace, organized_sample, capsys):
    ws, cfg = workspace
    rc, out = run_cli(capsys, "train-critical", "--config", cfg, "--workspace", ws)
    assert rc == 0, out
    report = json.loads((ws / "outputs/critical_species/report.json").read_text())
    rows = report["iterations"]
    assert [r["iteration"] for r in rows] == [1, 2] and [r["status"] for r in rows] == ["trained", "trained"]
    for r in rows:
        assert set(r["recall"]) == set(SPECIES) and r["mAP50"] is not None
    assert "R lionfish" in out and "recall gate passed" in out

    # oversampling: iteration 1 trains on the exact oversampled list, val untouched
    spec = load_dataset_yaml(organized_sample / "dataset.yaml")
    expected = oversampled_list(scan_train_split(spec), critical_class_ids(spec.names, SPECIES), 2.5, seed=0)
    it1 = (ws / "data/critical_species/iter1/train.txt").read_text().split()
    assert Counter(it1) == Counter(str(p.resolve()) for p in expected)
    derived = yaml.safe_load((ws / "data/critical_species/iter1/dataset.yaml").read_text())
    assert Path(derived["val"]) == spec.splits["val"][0]

    # mining: every planted decoy is a negative (known background), the corrupt file is counted
    assert rows[0]["unreadable"] == 1 and rows[0]["scanned"] >= 4
    manifest = json.loads((ws / "data/critical_species/iter1/negatives/negatives.json").read_text())
    decoy_rows = [n for n in manifest["negatives"] if n["source"] == "decoys"]
    assert sorted(Path(n["source_image"]).name for n in decoy_rows) == [f"decoy{i}.jpg" for i in range(4)]
    assert rows[0]["negatives_added"] == len(manifest["negatives"])
    it2 = (ws / "data/critical_species/iter2/train.txt").read_text().split()
    assert len(it2) == len(it1) + rows[0]["negatives_added"]
    for n in decoy_rows:
        image = ws / "data/critical_species/iter1/negatives" / n["file"]
        assert str(image) in it2
        assert (image.parent.parent / "labels" / f"{image.stem}.txt").read_text() == ""  # background

    best = ws / "checkpoints/critical_species/best.pt"
    assert best.read_bytes() == (ws / "checkpoints/critical_species/iter2/best.pt").read_bytes()
    assert len((ws / "checkpoints/critical_species/metrics.jsonl").read_text().splitlines()) == 2

    # rerun: both iterations skipped (resume), now with an unreachable gate -> exit 1 naming the species
    rc, out = run_cli(capsys, "train-critical", "--config", cfg, "--workspace", ws, "critical_species.min_recall=1.0")
    assert rc == 1, out
    report = json.loads((ws / "outputs/critical_species/report.json").read_text())
    assert [r["status"] for r in report["iterations"]] == ["skipped", "skipped"]
    assert "recall gate FAILED" in out and "lionfish" in out
    assert not report["gate"]["passed"]
    rc, out = run_cli(capsys, "train-critical", "--config", cfg, "--workspace", ws, "--no-gate",
                      "critical_species.min_recall=1.0")
    assert rc == 0, out


@pytest.mark.parametrize(("override", "message"), [
    ("critical_species.species=[lionfish,kraken]", "kraken"),
    ("critical_species.species=[sea_star]", "nothing was trained"),
])
def test_bad_species_exit_2_without_training(workspace, organized_sample, capsys, override, message):
    ws, cfg = workspace
    if "sea_star" in override:  # a train split without any sea star: relabel them all as rockfish
        data = ws / "organized"
        import shutil

        shutil.copytree(organized_sample, data)
        for label in (data / "labels" / "train").glob("*.txt"):
            label.write_text("".join(("4" + ln[1:] if ln.startswith("3 ") else ln) + "\n"
                                     for ln in label.read_text().splitlines()))
        override = f"{override} critical_species.data={data / 'dataset.yaml'}"
    rc, out = run_cli(capsys, "train-critical", "--config", cfg, "--workspace", ws, *override.split())
    assert rc == 2, out
    assert message in out
    if "kraken" in override:
        assert "lionfish, purple_sea_urchin, abalone, sea_star, rockfish" in out  # the dataset's classes
    assert not (ws / "checkpoints").exists()


def test_base_model_with_other_classes_is_refused(workspace, tiny_model, capsys):
    import torch

    ws, cfg = workspace
    ckpt = torch.load(str(tiny_model), map_location="cpu", weights_only=False)
    ckpt["model"].names = {0: "cod", 1: "herring", 2: "abalone", 3: "sea_star", 4: "rockfish"}
    other = ws / "other.pt"
    torch.save(ckpt, other)
    rc, out = run_cli(capsys, "train-critical", "--config", cfg, "--workspace", ws,
                      f"critical_species.base_model={other}")
    assert rc == 2, out
    assert "cod" in out and "lionfish" in out
    assert not (ws / "checkpoints").exists()
