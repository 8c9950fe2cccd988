"""Energy model, budget governor and the plan table."""

from __future__ import annotations

import pytest

from marauder.runtime.energy import EnergyGovernor, EnergyModel
from marauder.runtime.errors import EdgeError
from marauder.runtime.plan import model_size_letter, plan_rows

MODES = {"MAXN": 10.0, "5W": 5.0}


@pytest.mark.parametrize("mode,wall,busy,expected_wh", [
    ("MAXN", 3600, 0, 2.0),        # idle all hour at 2 W
    ("MAXN", 3600, 3600, 10.0),    # busy all hour at 10 W
    ("5W", 3600, 1800, 3.5),       # half busy at 5 W, half idle at 2 W
    ("MAXN", 36, 72, 0.1),         # busy time cannot exceed wall time
])
def test_energy_wh(mode, wall, busy, expected_wh):
    assert EnergyModel(MODES, mode, 2.0).energy_wh(wall, busy) == pytest.approx(expected_wh)


def test_unknown_power_mode_is_refused():
    with pytest.raises(ValueError, match="power mode 'TURBO'") as info:
        EnergyModel(MODES, "TURBO", 2.0)
    assert isinstance(info.value, EdgeError)  # marauder-edge --power-mode TURBO: one line, no traceback


def test_capture_energy_and_max_fps_are_consistent():
    m = EnergyModel(MODES, "MAXN", 2.0)
    busy, duration = 0.1, 30.0
    best = m.max_fps_within(0.05, busy, duration)
    assert m.capture_wh(best, busy, duration) == pytest.approx(0.05)
    assert m.max_fps_within(0.01, busy, duration) == 0.0  # idling alone costs 0.0167 Wh


def test_governor_keeps_then_lowers_then_stops():
    m = EnergyModel(MODES, "MAXN", 2.0)
    # 30 s at 5 fps with 0.1 s busy per frame costs 0.0283 Wh: within 0.05
    g = EnergyGovernor(m, 0.05, 30.0, target_fps=5, min_fps=1)
    g.observe(0.1)
    assert g.decide(1.0, 0.5) == "keep"
    # a budget of 0.03 Wh allows ~1.9 fps: the governor lowers the rate and says why
    g = EnergyGovernor(m, 0.03, 30.0, target_fps=5, min_fps=1)
    g.observe(0.1)
    assert g.decide(1.0, 0.5) == "lower"
    assert 1.0 <= g.fps < 5.0 and "lowering to" in g.events[-1][2]
    assert m.energy_wh(1.0, 0.5) + m.capture_wh(g.fps, 0.1, 29.0) <= 0.03
    # a budget below idle power: stop, with the reason
    g = EnergyGovernor(m, 0.012, 30.0, target_fps=5, min_fps=1)
    g.observe(0.1)
    assert g.decide(1.0, 0.5) == "stop" and g.stopped
    assert "stopping capture" in g.events[-1][2]


def test_plan_rows_cover_sizes_and_settings():
    energy = {"power_modes_watts": MODES, "power_mode": "MAXN", "idle_watts": 2.0}
    rows = plan_rows(0.2, 3, "n", energy, [5, 3], [30, 20], budget_wh=0.05)
    configs = {r["config"] for r in rows}
    assert "ensemble of 3 (measured)" in configs and "single model" in configs
    assert any("yolov8m (estimate)" in c for c in configs)
    measured = [r for r in rows if r["config"].endswith("(measured)")]
    assert len(measured) == 4  # 2 fps settings x 2 durations
    slow = next(r for r in rows if "yolov8x" in r["config"] and r["target_fps"] == 5)
    assert slow["expected_fps"] < 5  # a big model cannot keep up: expected fps is what it can do
    assert all(r["within_budget"] == (r["energy_wh"] <= 0.05) for r in rows)


@pytest.mark.parametrize("text,letter", [("yolov8n", "n"), ("Ultralytics YOLOv8m model", "m"), ("yolo11s", None)])
def test_model_size_letter(text, letter):
    assert model_size_letter(text) == letter
