"""The capture loop on real footage and image folders: schedule, frame dropping, JSON lines,
reconnection after a camera drop, and the energy governor."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from marauder.runtime.capture import open_source
from marauder.runtime.loop import run_capture

ENERGY = {"power_mode": "MAXN", "power_modes_watts": {"MAXN": 10.0, "5W": 5.0}, "idle_watts": 2.0,
          "energy_budget_wh": 1.0}


@pytest.fixture(scope="module")
def pipeline(tiny_model, tmp_path_factory):
    from marauder.config.sections.deploy import DeploymentConfig, ExportConfig
    from marauder.engines.ultralytics.export import export_onnx
    from marauder.export.deployment_config import build_deployment_config, choices_from_config
    from marauder.export.package import build_package
    from marauder.runtime.pipeline import EdgePipeline

    tmp = tmp_path_factory.mktemp("edge_pkg")
    info = export_onnx(tiny_model, tmp / "m.onnx", imgsz=64)
    names = info["class_names"]
    choices = choices_from_config(["m"], {"m": 0.0001}, {"method": "wbf"}, 0.0001, names, 0.0005, [])
    config = build_deployment_config(class_names=names, imgsz=64, models=[{"name": "m", "onnx": "models/m.onnx"}],
                                     choices=choices, export_cfg=ExportConfig(), deploy_cfg=DeploymentConfig(),
                                     nms_iou=0.6, check_images=[])
    pkg = build_package(tmp / "pkg", onnx_files={"m": info["path"]}, engine_files={}, config=config,
                        check_images=[])
    return EdgePipeline(pkg, backend="onnx")


class Slow:
    """The real pipeline plus a fixed extra busy time per frame (a bigger model, in effect)."""

    def __init__(self, inner, seconds):
        self.inner, self.seconds, self.class_names = inner, seconds, inner.class_names

    def predict(self, images):
        out = self.inner.predict(images)
        time.sleep(self.seconds)
        return out


def read_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "detections.jsonl").read_text().splitlines()]


def test_footage_in_real_time_skips_frames_it_has_no_time_for(pipeline, shared_data, tmp_path):
    video = shared_data / "footage" / "deepfish_7426_F1.mp4"  # 10 fps
    summary = run_capture(pipeline, open_source(video), tmp_path, target_fps=5, duration_s=2.0, energy=ENERGY,
                          save_annotated=True)
    lines = read_lines(tmp_path)
    assert summary["stop_reason"] == "duration reached"
    assert 7 <= summary["frames"] == len(lines) <= 11
    assert summary["source_frames_skipped"] >= 5  # a 10 fps clip sampled at 5 fps
    assert [rec["frame"] for rec in lines] == list(range(len(lines)))
    assert all("detections" in rec and "video_time_s" in rec for rec in lines)
    assert any(rec["detections"] for rec in lines)
    assert len(list((tmp_path / "frames").glob("*.jpg"))) == len(lines)
    assert 0 < summary["energy_wh"] < ENERGY["energy_budget_wh"] and summary["energy_events"] == []


def test_slow_pipeline_drops_ticks_instead_of_queueing(pipeline, organized_sample, tmp_path):
    folder = organized_sample / "images" / "train"
    summary = run_capture(Slow(pipeline, 0.25), open_source(folder), tmp_path, target_fps=10, duration_s=1.2,
                          energy=ENERGY)
    assert summary["dropped_ticks"] >= 3
    assert summary["frames"] <= 6  # 1.2 s at 0.25 s per frame, never a backlog of 12
    assert summary["frames"] == len(read_lines(tmp_path))


def test_folder_source_processes_every_image(pipeline, organized_sample, tmp_path):
    folder = organized_sample / "images" / "test"
    summary = run_capture(pipeline, open_source(folder), tmp_path, target_fps=100, duration_s=30, energy=ENERGY)
    files = sorted(p.name for p in folder.glob("*.jpg"))
    assert summary["stop_reason"] == "source ended"
    assert [rec["file"] for rec in read_lines(tmp_path)] == files


def test_max_frames_stops_the_capture_and_says_so(pipeline, organized_sample, tmp_path):
    summary = run_capture(pipeline, open_source(organized_sample / "images" / "test"), tmp_path, target_fps=100,
                          duration_s=30, energy=ENERGY, max_frames=2)
    assert summary["stop_reason"] == "max frames reached"
    assert summary["frames"] == len(read_lines(tmp_path)) == 2


def short_clip(path: Path, frames: int = 6) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 20.0, (96, 64))
    for i in range(frames):
        writer.write(np.full((64, 96, 3), 40 * i % 255, np.uint8))
    writer.release()
    return path


def test_camera_disconnect_reconnects_and_keeps_what_was_written(pipeline, tmp_path):
    clip = short_clip(tmp_path / "cam.mp4")  # a 'camera' whose stream ends after 0.3 s, then comes back
    summary = run_capture(pipeline, open_source(clip, live=True), tmp_path / "out", target_fps=20, duration_s=2.0,
                          energy=ENERGY, backoff_s=0.1)
    assert summary["reconnects"] >= 1
    assert summary["stop_reason"] == "duration reached"
    assert summary["frames"] == len(read_lines(tmp_path / "out")) > 6  # frames from more than one connection


def test_camera_that_never_returns_ends_the_capture_cleanly(pipeline, tmp_path):
    clip = short_clip(tmp_path / "cam.mp4")
    opened = []

    def opener(target):
        opened.append(target)
        return cv2.VideoCapture(target if len(opened) == 1 else str(tmp_path / "gone.mp4"))

    source = open_source(clip, live=True, opener=opener)
    summary = run_capture(pipeline, source, tmp_path / "out", target_fps=20, duration_s=1.5, energy=ENERGY,
                          backoff_s=0.1)
    assert summary["stop_reason"] == "source disconnected and did not come back"
    assert len(opened) >= 3  # retried with backoff
    assert summary["frames"] == len(read_lines(tmp_path / "out")) >= 1


def test_energy_budget_lowers_fps_then_holds(pipeline, organized_sample, tmp_path):
    folder = organized_sample / "images" / "train"
    budget = dict(ENERGY, energy_budget_wh=0.0022)  # 10 fps x 50 ms at 10 W would need ~0.0033 Wh
    summary = run_capture(Slow(pipeline, 0.05), open_source(folder), tmp_path, target_fps=10, duration_s=2.0,
                          energy=budget, min_fps=1.0)
    assert summary["energy_events"] and summary["energy_events"][0]["action"] == "lower_fps"
    assert "lowering to" in summary["energy_events"][0]["reason"]
    assert summary["final_fps"] < 10
    assert summary["energy_wh"] <= 0.0022 * 1.1  # within budget (timing jitter aside)


def test_energy_budget_below_idle_stops_capture(pipeline, organized_sample, tmp_path):
    folder = organized_sample / "images" / "train"
    summary = run_capture(pipeline, open_source(folder), tmp_path, target_fps=5, duration_s=10,
                          energy=dict(ENERGY, energy_budget_wh=0.0005))
    assert summary["stop_reason"] == "energy budget" and summary["frames"] == 1
    assert "stopping capture" in summary["energy_events"][-1]["reason"]


def test_unusable_engine_falls_back_to_onnx_in_auto_mode(pipeline, tmp_path, monkeypatch, caplog):
    import shutil

    from marauder.runtime import pipeline as edge_pipeline
    from marauder.runtime.errors import BackendUnavailable

    pkg = tmp_path / "pkg"
    shutil.copytree(pipeline.package_dir, pkg)
    (pkg / "engines" / "m.engine").write_bytes(b"an engine from another device")
    config = dataclasses.replace(pipeline.config,
                                 models=[dataclasses.replace(pipeline.config.models[0], engine="engines/m.engine")])
    monkeypatch.setattr(edge_pipeline, "tensorrt_available", lambda: True)  # as if on a Jetson
    with caplog.at_level("WARNING", logger="marauder_edge"):
        edge = edge_pipeline.EdgePipeline(pkg, backend="auto", verify=False, config=config)
    assert edge.backend_kind == "onnx" and edge.model_files[0].endswith("m.onnx")
    assert "m.engine: TensorRT is not installed" in caplog.text
    assert "using models/m.onnx with ONNX Runtime instead" in caplog.text
    with pytest.raises(BackendUnavailable):  # asked for TensorRT explicitly: no silent fallback
        edge_pipeline.EdgePipeline(pkg, backend="tensorrt", verify=False, config=config)
