"""The guide's organizer command on real in-situ frames (DeepFish): habitats never cross splits, and
the written dataset.yaml trains with the real `yolo` CLI."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.shared_data, pytest.mark.slow]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "YOLO_OFFLINE": "1", "WANDB_MODE": "disabled",
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


@pytest.fixture(scope="module", params=["deepfish_([0-9]+)_", "meta:habitat"], ids=["regex", "meta-csv"])
def organized_deepfish(request, shared_data, tmp_path_factory) -> Path:
    """`python data/acquisition/dataset_organizer.py ... --split 0.7 0.15 0.15 --group-by <habitat>`."""
    src = shared_data / "deepfish-det"
    out = tmp_path_factory.mktemp("deepfish") / "organized"
    cmd = [sys.executable, str(REPO / "data/acquisition/dataset_organizer.py"),
           "--source-images", str(src / "images"), "--source-labels", str(src / "labels"),
           "--output", str(out), "--split", "0.7", "0.15", "0.15", "--group-by", request.param]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=out.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def test_no_habitat_in_two_splits(organized_deepfish, shared_data):
    with open(shared_data / "deepfish-det/source_map.csv", newline="") as fh:
        habitat = {row["file_name"]: row["habitat"] for row in csv.DictReader(fh)}
    manifest = json.loads((organized_deepfish / "manifest.json").read_text())
    splits_of_habitat = defaultdict(set)
    for split in ("train", "val", "test"):
        images = sorted((organized_deepfish / "images" / split).glob("*.jpg"))
        assert images, f"empty {split} split"
        for image in images:
            splits_of_habitat[habitat[image.name]].add(split)
    assert len(splits_of_habitat) == 14
    assert all(len(s) == 1 for s in splits_of_habitat.values()), dict(splits_of_habitat)
    counts = manifest["counts"]
    assert sum(c["images"] for c in counts.values()) == 210
    assert sum(c["boxes"] for c in counts.values()) == 565
    assert 0.55 < counts["train"]["images"] / 210 < 0.85  # whole habitats of 15 frames: coarse fractions
    assert all(c["classes"]["fish"] > 0 for c in counts.values())


def test_dataset_yaml_trains_with_yolo_cli(organized_deepfish, tmp_path, request):
    if "meta-csv" in request.node.name:
        pytest.skip("one training run is enough (the regex-grouped dataset trains)")
    yolo = Path(sys.executable).parent / "yolo"
    if not yolo.exists():
        pytest.skip(f"yolo CLI not installed next to {sys.executable}")
    cmd = [str(yolo), "detect", "train", f"data={organized_deepfish / 'dataset.yaml'}", "model=yolov8n.yaml",
           "epochs=1", "imgsz=32", "batch=16", "workers=0", "device=cpu", "plots=False", "amp=False",
           f"project={tmp_path}", "name=run", "exist_ok=True"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert (tmp_path / "run/weights/last.pt").is_file()
    assert (tmp_path / "run/results.csv").is_file()
