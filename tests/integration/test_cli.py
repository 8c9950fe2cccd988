"""The `marauder` command: fast help without torch, and bad input -> exit 2, one line, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from marauder.cli import main

REPO = Path(__file__).resolve().parents[2]


def run_cli(capsys, *args) -> tuple[int, list[str]]:
    rc = main([str(a) for a in args])
    captured = capsys.readouterr()
    return rc, [ln for ln in (captured.out + captured.err).splitlines() if ln.strip()]


def error_line(lines: list[str]) -> str:
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, lines
    return errors[0]


def test_help_is_fast_and_imports_no_heavy_library():
    code = (
        "import sys, time; t = time.perf_counter()\n"
        "from marauder.cli import build_parser\n"
        "build_parser().format_help()\n"
        "heavy = [m for m in ('torch', 'ultralytics', 'onnxruntime', 'cv2') if m in sys.modules]\n"
        "print(heavy, round(time.perf_counter() - t, 2))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    heavy, seconds = out.stdout.rsplit(" ", 1)
    assert heavy == "[]", f"--help imported {heavy}"
    assert float(seconds) < 5.0


def test_help_lists_this_issue_commands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for command in ("sample", "organize", "validate-data", "config"):
        assert command in text


def _tiny_source(root: Path, defect: str | None = None) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(6):
        img = np.random.default_rng(i).integers(0, 255, (24, 32, 3), dtype=np.uint8)
        cv2.imwrite(str(root / f"images/clip{i % 3}_f{i}.jpg"), img)
        (root / f"labels/clip{i % 3}_f{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "classes.txt").write_text("fish\n")
    if defect == "4 fields":
        (root / "labels/clip1_f1.txt").write_text("0 0.5 0.5 0.2\n")
    elif defect == "corrupt jpeg":
        data = (root / "images/clip1_f1.jpg").read_bytes()
        (root / "images/clip1_f1.jpg").write_bytes(data[:100])
    return root


ORGANIZE_BAD = [
    ("split does not sum to 1", None, ["--split", "0.5", "0.2", "0.2"], "sum to 1", None),
    ("label file with 4 fields", "4 fields", [], "expected 5 fields", "clip1_f1.txt:1:"),
    ("corrupt jpeg", "corrupt jpeg", [], "truncated", "clip1_f1.jpg"),
    ("missing source", None, ["--source-images", "nowhere"], "not found: run `marauder download`", "nowhere"),
]


@pytest.mark.parametrize("name,defect,extra,message,where", ORGANIZE_BAD, ids=[c[0] for c in ORGANIZE_BAD])
def test_organize_bad_input(tmp_path, capsys, name, defect, extra, message, where):
    src = _tiny_source(tmp_path / "src", defect)
    args = ["organize", "--workspace", tmp_path, "--source-images", src / "images",
            "--source-labels", src / "labels", "--output", tmp_path / "out", *extra]
    rc, lines = run_cli(capsys, *args)
    assert rc == 2
    line = error_line(lines)
    assert message in line and (where is None or where in line)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out*"))


def test_organize_output_with_different_dataset(tmp_path, capsys):
    src = _tiny_source(tmp_path / "src")
    common = ["organize", "--workspace", tmp_path, "--source-images", src / "images",
              "--source-labels", src / "labels", "--output", tmp_path / "out", "--group-by", "clip([0-9])_"]
    assert run_cli(capsys, *common)[0] == 0
    before = (tmp_path / "out/manifest.json").read_text()
    assert (tmp_path / "out/resolved_config.yaml").is_file()  # the run's config beside its outputs
    rc, lines = run_cli(capsys, *common, "--seed", "9")
    assert rc == 2 and "different organised dataset" in error_line(lines)
    assert (tmp_path / "out/manifest.json").read_text() == before
    assert (tmp_path / "logs/organize.log").is_file()


CONFIG_BAD = [
    ("missing config file", None, "config file not found"),
    ("unknown key", "general:\n  sed: 1\n", ":2: unknown key 'general.sed' (did you mean 'seed'?)"),
    ("wrong type", "general:\n  seed: x\n", ":2: general.seed"),
]


@pytest.mark.parametrize("name,text,message", CONFIG_BAD, ids=[c[0] for c in CONFIG_BAD])
def test_config_errors(tmp_path, capsys, name, text, message):
    cfg = tmp_path / "cfg.yaml"
    if text is not None:
        cfg.write_text(text)
    rc, lines = run_cli(capsys, "config", "--check", "--config", cfg)
    assert rc == 2
    line = error_line(lines)
    assert str(cfg) in line and message in line


def test_unknown_override_key(tmp_path, capsys):
    rc, lines = run_cli(capsys, "config", "--check", "general.sede=1", "--workspace", tmp_path)
    assert rc == 2 and "did you mean 'seed'" in error_line(lines)


def test_sample_then_validate(tmp_path, capsys):
    out = tmp_path / "s"
    assert run_cli(capsys, "sample", "--output", out, "--images", 12, "--unlabelled", 3,
                   "--workspace", tmp_path)[0] == 0
    assert (tmp_path / "logs/sample.log").is_file()
    assert len(list((out / "images").glob("*.jpg"))) == 12
    assert len(list((out / "unlabelled/images").glob("*.jpg"))) == 3
    rc, lines = run_cli(capsys, "sample", "--output", out, "--workspace", tmp_path)
    assert rc == 2 and "already exists" in error_line(lines)
    rc, lines = run_cli(capsys, "validate-data", out, "--workspace", tmp_path)
    assert rc == 0 and any("no problems" in ln for ln in lines)
    (out / "labels/dive01_frame0000.txt").write_text("9 0.5 0.5 0.1 0.1\n")
    rc, lines = run_cli(capsys, "validate-data", out, "--workspace", tmp_path, "--fix")
    assert rc == 0  # fixed: the bad pair moved to quarantine/, nothing left to report
    assert (out / "quarantine/labels/dive01_frame0000.txt.reason.txt").is_file()
    assert (out / "quarantine/images/dive01_frame0000.jpg").is_file()


def test_validate_missing_folder(tmp_path, capsys):
    rc, lines = run_cli(capsys, "validate-data", tmp_path / "nope", "--workspace", tmp_path)
    assert rc == 2 and "not found" in error_line(lines)


def test_guide_script_path_runs_organize(tmp_path):
    src = _tiny_source(tmp_path / "src")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, str(REPO / "data/acquisition/dataset_organizer.py"), "--source-images", str(src / "images"),
         "--source-labels", str(src / "labels"), "--output", str(tmp_path / "organized"),
         "--split", "0.7", "0.15", "0.15"],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "organized/dataset.yaml").is_file()
    assert time.perf_counter() - start < 60
