"""`marauder train-baseline` and `marauder lr-find` for real: tiny data, 32 px, a few epochs on CPU.

The resume test kills a real training process with SIGKILL and restarts the same command.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes.datasets import make_yolo_set

from marauder.cli import main

pytestmark = pytest.mark.slow
COMMON = ["general.device=cpu", "general.num_workers=0", "general.mixed_precision=false", "general.imgsz=64",
          "baseline_yolo.model_size=yolov8n", "baseline_yolo.use_ssl_backbone=false", "baseline_yolo.imgsz=32",
          "baseline_yolo.batch_size=4", "baseline_yolo.warmup_epochs=0", "logging.tensorboard=false"]


@pytest.fixture()
def workspace(tmp_path) -> Path:
    make_yolo_set(tmp_path / "data" / "organized")
    return tmp_path


def _cli(ws: Path, *extra: str) -> list[str]:
    return ["train-baseline", "--workspace", str(ws), *COMMON, *extra]


def test_killed_run_resumes_with_the_same_command(workspace):
    args = _cli(workspace, "baseline_yolo.epochs=4", "checkpointing.save_period=1", "checkpointing.keep_last_n=2")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from marauder.cli import main; sys.exit(main())",
                             *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # the copy in checkpoints/ appears (atomically) right after Ultralytics saved epoch 1
    last = workspace / "checkpoints" / "baseline" / "last.pt"
    deadline = time.time() + 180
    try:
        while not last.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert last.exists() and proc.poll() is None, "training never wrote last.pt"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert main(args) == 0  # same command again
    log = (workspace / "logs" / "1_baseline.log").read_text()
    assert "resuming from" in log
    out = workspace / "checkpoints" / "baseline"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    assert (out / "resolved_config.yaml").is_file()
    assert sorted(p.name for p in out.glob("epoch*.pt")) == ["epoch2.pt", "epoch3.pt"]  # keep_last_n=2
    # finished: --resume on the final last.pt is refused, nothing to resume
    assert main(_cli(workspace, "--resume", str(out / "last.pt"))) == 2


def test_save_best_only_and_explicit_resume_path(workspace, capsys):
    assert main(_cli(workspace, "baseline_yolo.epochs=1", "checkpointing.save_best_only=true")) == 0
    out = workspace / "checkpoints" / "baseline"
    assert (out / "best.pt").is_file() and not (out / "last.pt").exists()
    assert main(_cli(workspace, "--resume", str(workspace / "missing.pt"))) == 2
    assert "missing.pt does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("extra, expected", [
    (["baseline_yolo.epochs=0"], "epochs"),
    (["baseline_yolo.data=data/organized/broken.yaml"], "split 'val' is missing"),
    (["baseline_yolo.use_ssl_backbone=true"], "best_moco.pth not found: run `marauder ssl-pretrain"),
])
def test_bad_input_fails_before_training(workspace, capsys, extra, expected):
    (workspace / "data" / "organized" / "broken.yaml").write_text("path: .\ntrain: images/train\nnames: [fish]\n")
    assert main(_cli(workspace, *extra)) == 2
    assert expected in capsys.readouterr().err.replace("\n", " ")
    assert not (workspace / "runs").exists() and not (workspace / "checkpoints").exists()


def test_lr_find_saves_plot_and_prints_suggestion(workspace, capsys):
    rc = main(["lr-find", "--workspace", str(workspace), *COMMON, "--steps", "12",
               "baseline_yolo.lr_find.start_lr=1e-5", "baseline_yolo.lr_find.end_lr=1.0"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "suggested learning rate:" in printed
    plot = workspace / "outputs" / "lr_find" / "lr_find.png"
    assert plot.is_file() and plot.stat().st_size > 1000
    data = json.loads(plot.with_suffix(".json").read_text())
    assert 1e-5 <= data["suggested_lr"] <= 1.0 and len(data["lrs"]) == len(data["losses"]) >= 8
