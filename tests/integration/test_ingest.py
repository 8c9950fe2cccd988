"""`marauder ingest`: real files, a real clip (../shared/data/footage), OpenCV frame extraction."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from marauder.cli import main


def _jpeg(path: Path, seed: int, size=(48, 64)) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rng.integers(0, 255, (*size, 3), dtype=np.uint8))
    return path


def _meta(ws: Path, source: str) -> dict:
    return json.loads((ws / "data" / source / "metadata.json").read_text())


def test_deepfish_images_recursive_deduplicated(tmp_path):
    src = tmp_path / "DeepFish"
    _jpeg(src / "7117" / "frame1.jpg", 1)
    _jpeg(src / "7117" / "frame2.JPG", 2)
    _jpeg(src / "9894" / "frame1.jpg", 3)  # same name, other habitat: both kept
    cv2.imwrite(str(src / "9894" / "frame3.png"), np.full((20, 20, 3), 90, np.uint8))
    shutil.copy(src / "7117" / "frame1.jpg", src / "9894" / "copy_of_frame1.jpg")  # same bytes: skipped
    (src / "notes.txt").write_text("not an image")
    (src / "bad.jpg").write_bytes(b"\xff\xd8 broken")
    ws = tmp_path / "ws"
    assert main(["ingest", str(src), "--source", "deepfish", "--workspace", str(ws)]) == 0
    out = ws / "data" / "deepfish" / "images"
    assert sorted(p.name for p in out.iterdir()) == [
        "7117__frame1.jpg", "7117__frame2.jpg", "9894__frame1.jpg", "9894__frame3.png"]
    meta = _meta(ws, "deepfish")
    assert {e["file"]: e["group"] for e in meta["images"]}["9894__frame3.png"] == "9894"
    assert (out / "7117__frame1.jpg").read_bytes() == (src / "7117" / "frame1.jpg").read_bytes()
    # Again, with one new file: only the new one is added.
    _jpeg(src / "7117" / "frame9.jpg", 9)
    assert main(["ingest", str(src), "--source", "deepfish", "--workspace", str(ws)]) == 0
    assert len(list(out.iterdir())) == 5
    assert not list(out.glob(".*"))


@pytest.mark.shared_data
def test_own_footage_frames_with_clip_and_timestamp(shared_data, tmp_path):
    clip = shared_data / "footage" / "deepfish_7426_F1.mp4"
    src = tmp_path / "footage"
    src.mkdir()
    shutil.copy(clip, src / clip.name)
    (src / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 definitely not a video")
    _jpeg(src / "still.jpg", 5)
    ws = tmp_path / "ws"
    assert main(["ingest", str(src), "--source", "marauder", "--workspace", str(ws), "--frame-rate", "5",
                 "--phash-distance", "0"]) == 0
    out = ws / "data" / "marauder" / "images"
    frames = sorted(p.name for p in out.glob("deepfish_7426_F1_t*.jpg"))
    assert len(frames) == 38  # 76 frames at 10 fps, every 2nd, none dropped at distance 0
    assert frames[:2] == ["deepfish_7426_F1_t00000.000s.jpg", "deepfish_7426_F1_t00000.200s.jpg"]
    meta = _meta(ws, "marauder")
    by_file = {e["file"]: e for e in meta["images"]}
    e = by_file["deepfish_7426_F1_t00000.200s.jpg"]
    assert e["clip"] == "deepfish_7426_F1" and e["group"] == "deepfish_7426_F1" and e["timestamp_s"] == 0.2
    assert "still.jpg" in by_file
    assert cv2.imread(str(out / frames[-1])).shape == (202, 360, 3)

    # Near-duplicate removal on the same static-camera clip: far fewer frames, and re-ingesting with
    # new settings replaces the old frames instead of mixing them.
    assert main(["ingest", str(src), "--source", "marauder", "--workspace", str(ws), "--frame-rate", "5",
                 "--phash-distance", "10"]) == 0
    kept = sorted(p.name for p in out.glob("deepfish_7426_F1_t*.jpg"))
    assert 1 <= len(kept) < len(frames) and kept[0] == frames[0]
    assert len(_meta(ws, "marauder")["images"]) == len(kept) + 1


def test_unopenable_video_is_named_in_the_summary(tmp_path, capsys):
    src = tmp_path / "clips"
    src.mkdir()
    (src / "broken.mkv").write_bytes(b"garbage" * 100)
    ws = tmp_path / "ws"
    assert main(["ingest", str(src), "--source", "marauder", "--workspace", str(ws)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "broken.mkv" in err and "OpenCV cannot open it" in err


def test_foreign_metadata_json_is_one_clear_error(tmp_path, capsys):
    src = tmp_path / "src"
    _jpeg(src / "a.jpg", 1)
    ws = tmp_path / "ws"
    (ws / "data" / "deepfish").mkdir(parents=True)
    (ws / "data" / "deepfish" / "metadata.json").write_text("[1, 2]")
    assert main(["ingest", str(src), "--source", "deepfish", "--workspace", str(ws)]) == 2
    assert "not an ingest metadata file" in capsys.readouterr().err
    assert not list((ws / "data" / "deepfish" / "images").iterdir())


@pytest.mark.parametrize("args, message", [
    (["--source", "deepfish"], "not a folder"),
    (["--source", "marauder", "--frame-rate", "0"], "--frame-rate must be > 0"),
])
def test_bad_input(tmp_path, capsys, args, message):
    assert main(["ingest", str(tmp_path / "missing"), *args, "--workspace", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_dataset_layout_with_images_folder(tmp_path):
    """DIR/images/*.jpg (the usual dataset layout): names and group come without the 'images' level."""
    src = tmp_path / "reef-survey"
    _jpeg(src / "images" / "a.jpg", 1)
    _jpeg(src / "images" / "site2" / "b.jpg", 2)
    ws = tmp_path / "ws"
    assert main(["ingest", str(src), "--source", "deepfish", "--workspace", str(ws), "--link", "hardlink"]) == 0
    groups = {e["file"]: e["group"] for e in _meta(ws, "deepfish")["images"]}
    assert groups == {"a.jpg": "reef-survey", "site2__b.jpg": "site2"}
    assert (ws / "data/deepfish/images/a.jpg").stat().st_ino == (src / "images" / "a.jpg").stat().st_ino
