"""`marauder-edge plan`: expected fps and energy per capture for each model size and fps setting.

Busy time per frame is measured on this machine by running the package's pipeline on a frame (or
given with --latency-ms, e.g. a figure measured on the Jetson). Other YOLOv8 sizes are estimated by
scaling the measured time with their GFLOPs at 640 px, and are marked as estimates.
"""

from __future__ import annotations

import re
import time

import numpy as np

from .energy import EnergyModel

# Ultralytics' published GFLOPs at 640 px (detection); used only to scale a measured latency
YOLOV8_GFLOPS = {"n": 8.7, "s": 28.6, "m": 78.9, "l": 165.2, "x": 257.8}


def model_size_letter(description: str):
    m = re.search(r"yolov8([nsmlx])", description or "", re.IGNORECASE)
    return m.group(1).lower() if m else None


def measure_busy_s(pipeline, frame_hw=(1080, 1920), repeats: int = 3) -> float:
    """Median seconds per frame of the whole pipeline (all models and views), after one warm-up."""
    frame = np.random.default_rng(0).integers(0, 255, (frame_hw[0], frame_hw[1], 3), dtype=np.uint8)
    pipeline.predict([frame])
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        pipeline.predict([frame])
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def plan_rows(busy_s: float, n_models: int, size_letter, energy: dict, fps_settings, durations,
              budget_wh: float) -> list:
    """One row per (configuration, fps, duration)."""
    model = EnergyModel.from_config(energy)
    configs = [(f"ensemble of {n_models} (measured)", busy_s)]
    if n_models > 1:
        configs.append(("single model", busy_s / n_models))
    if size_letter in YOLOV8_GFLOPS:
        per_model = busy_s / n_models
        for letter, gflops in YOLOV8_GFLOPS.items():
            if letter == size_letter:
                continue
            scaled = per_model * gflops / YOLOV8_GFLOPS[size_letter]
            configs.append((f"ensemble of {n_models} x yolov8{letter} (estimate)", scaled * n_models))
    rows = []
    for name, busy in configs:
        for fps in fps_settings:
            achievable = min(float(fps), 1.0 / busy if busy > 0 else float("inf"))
            for duration in durations:
                wh = model.capture_wh(achievable, busy, duration)
                rows.append({
                    "config": name, "busy_ms": round(busy * 1000, 1), "target_fps": fps,
                    "expected_fps": round(achievable, 2), "duration_s": duration,
                    "energy_wh": round(wh, 5), "within_budget": wh <= budget_wh,
                    "max_fps_in_budget": round(min(model.max_fps_within(budget_wh, busy, duration), 1e3), 2),
                })
    return rows


def format_table(rows: list, budget_wh: float, power_mode: str) -> str:
    head = "{:<42} {:>8} {:>7} {:>9} {:>6} {:>10} {:>7} {:>10}".format(
        "configuration", "busy ms", "fps", "expected", "dur s", "Wh", "budget", "max fps")
    lines = [f"power mode {power_mode}, budget {budget_wh:.4f} Wh per capture", head, "-" * len(head)]
    for r in rows:
        lines.append("{:<42} {:>8} {:>7} {:>9} {:>6} {:>10} {:>7} {:>10}".format(
            r["config"], r["busy_ms"], r["target_fps"], r["expected_fps"], r["duration_s"], r["energy_wh"],
            "ok" if r["within_budget"] else "OVER", r["max_fps_in_budget"]))
    return "\n".join(lines)
