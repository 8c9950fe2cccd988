"""Energy model and budget governor for a capture.

Power is modelled per nvpmodel power mode: the mode's active watts while the pipeline is busy, idle
watts otherwise. Energy (Wh) = (busy_s * active_w + (wall_s - busy_s) * idle_w) / 3600. Busy time
is measured, so the estimate follows the real model speed. The governor projects the energy of the
rest of the capture; when it would exceed the budget it lowers the frame rate, and when even the
minimum frame rate would exceed it, it stops the capture - each decision with a logged reason.
"""

from __future__ import annotations

from .errors import EnergyConfigError


class EnergyModel:
    def __init__(self, power_modes_watts: dict, power_mode: str, idle_watts: float):
        if power_mode not in power_modes_watts:
            raise EnergyConfigError(f"power mode '{power_mode}' is not in power_modes_watts "
                                    f"{sorted(power_modes_watts)}")
        self.power_mode = power_mode
        self.active_watts = float(power_modes_watts[power_mode])
        self.idle_watts = float(idle_watts)

    @classmethod
    def from_config(cls, energy: dict) -> EnergyModel:
        return cls(energy.get("power_modes_watts", {"MAXN": 10.0}), energy.get("power_mode", "MAXN"),
                   energy.get("idle_watts", 2.0))

    def energy_wh(self, wall_s: float, busy_s: float) -> float:
        busy_s = min(max(busy_s, 0.0), max(wall_s, 0.0))
        return (busy_s * self.active_watts + (wall_s - busy_s) * self.idle_watts) / 3600.0

    def power_at(self, fps: float, busy_per_frame_s: float) -> float:
        """Average watts at a frame rate, given the busy seconds each frame costs."""
        duty = min(fps * busy_per_frame_s, 1.0)
        return duty * self.active_watts + (1.0 - duty) * self.idle_watts

    def capture_wh(self, fps: float, busy_per_frame_s: float, duration_s: float) -> float:
        return self.power_at(fps, busy_per_frame_s) * duration_s / 3600.0

    def max_fps_within(self, budget_wh: float, busy_per_frame_s: float, duration_s: float) -> float:
        """Highest frame rate whose capture stays within budget (0 when idling alone exceeds it)."""
        if duration_s <= 0:
            return float("inf")
        watts = budget_wh * 3600.0 / duration_s
        extra = self.active_watts - self.idle_watts
        if watts < self.idle_watts:
            return 0.0
        if busy_per_frame_s <= 0 or extra <= 0:
            return float("inf")
        return (watts - self.idle_watts) / (busy_per_frame_s * extra)


class EnergyGovernor:
    """Decides, frame by frame, whether to keep the fps, lower it, or stop; records why."""

    def __init__(self, model: EnergyModel, budget_wh: float, duration_s: float, target_fps: float,
                 min_fps: float, smoothing: float = 0.3):
        self.model = model
        self.budget_wh = float(budget_wh)
        self.duration_s = float(duration_s)
        self.fps = float(target_fps)
        self.min_fps = min(float(min_fps), float(target_fps))
        self.smoothing = smoothing
        self.busy_per_frame = None  # running average of measured busy seconds per frame
        self.events = []  # (elapsed_s, action, reason)
        self.stopped = False

    def observe(self, busy_s: float) -> None:
        if self.busy_per_frame is None:
            self.busy_per_frame = busy_s
        else:
            self.busy_per_frame += self.smoothing * (busy_s - self.busy_per_frame)

    def decide(self, elapsed_s: float, busy_total_s: float) -> str:
        """'keep', 'lower' (self.fps changed) or 'stop', from the projected energy of the capture."""
        used = self.model.energy_wh(elapsed_s, busy_total_s)
        remaining_s = max(self.duration_s - elapsed_s, 0.0)
        left_wh = self.budget_wh - used
        per_frame = self.busy_per_frame or 0.0
        projected = used + self.model.capture_wh(self.fps, per_frame, remaining_s)
        if projected <= self.budget_wh:
            return "keep"
        frame_wh = per_frame * self.model.active_watts / 3600.0
        best = self.model.max_fps_within(left_wh, per_frame, remaining_s) if left_wh > 0 else 0.0
        if best >= self.min_fps and left_wh > frame_wh:
            new_fps = max(self.min_fps, min(self.fps, best * 0.98))  # small margin for jitter
            reason = (f"projected {projected:.4f} Wh > budget {self.budget_wh:.4f} Wh at {self.fps:.2f} fps ({per_frame * 1000:.0f} ms busy per frame, {self.model.power_mode} mode "
                      f"{self.model.active_watts:.1f} W); lowering to {new_fps:.2f} fps")
            self.events.append((round(elapsed_s, 3), "lower_fps", reason))
            self.fps = new_fps
            return "lower"
        reason = (f"used {used:.4f} of {self.budget_wh:.4f} Wh after {elapsed_s:.1f} s; even {self.min_fps:.2f} fps would exceed the budget over the "
                  f"remaining {remaining_s:.1f} s: stopping capture")
        self.events.append((round(elapsed_s, 3), "stop", reason))
        self.stopped = True
        return "stop"
