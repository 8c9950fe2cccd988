"""The vehicle's capture loop: read the newest frame on a fixed schedule, detect, write, repeat.

- Schedule: one frame every 1/fps seconds; when a frame takes longer, the next one starts at once
  and the missed ticks are dropped (counted), never queued.
- Output: detections.jsonl, one line per processed frame, flushed and fsynced, so a power cut
  loses at most the frame in flight; optional annotated JPEGs; summary.json at the end.
- Live sources that disconnect are reopened with exponential backoff until the capture ends.
- The energy governor may lower the fps or stop the capture before the budget is exceeded.
"""

from __future__ import annotations

import json
import logging
import os
import time

import cv2

from .energy import EnergyGovernor, EnergyModel

log = logging.getLogger("marauder_edge")


class JsonLinesWriter:
    def __init__(self, path):
        self.path = path
        self.fh = open(path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self.fh.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self):
        self.fh.close()


def annotate(frame, dets, class_names):
    out = frame.copy()
    for (x1, y1, x2, y2), score, cid in zip(dets.xyxy.tolist(), dets.scores.tolist(), dets.class_ids.tolist()):
        p1, p2 = (int(x1), int(y1)), (int(x2), int(y2))
        cv2.rectangle(out, p1, p2, (0, 255, 255), 2)
        label = f"{class_names[cid] if cid < len(class_names) else cid} {score:.2f}"
        cv2.putText(out, label, (p1[0], max(p1[1] - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 255), 1)
    return out


def _write_atomic(path, data: bytes):
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def run_capture(pipeline, source, out_dir, target_fps: float, duration_s: float, energy: dict,
                min_fps: float = 1.0, save_annotated: bool = False, max_frames=None,
                backoff_s: float = 0.5, max_backoff_s: float = 8.0) -> dict:
    """Run one capture; returns (and writes to summary.json) what happened."""
    os.makedirs(out_dir, exist_ok=True)
    if save_annotated:
        os.makedirs(os.path.join(out_dir, "frames"), exist_ok=True)
    model = EnergyModel.from_config(energy)
    governor = EnergyGovernor(model, float(energy.get("energy_budget_wh", 1e9)), duration_s, target_fps, min_fps)
    connected = source.open()  # files and folders raise SourceError here; a camera may come up later
    writer = JsonLinesWriter(os.path.join(out_dir, "detections.jsonl"))
    names = pipeline.class_names
    frames, dropped_ticks, reconnects, busy = 0, 0, 0, 0.0
    stop_reason = "duration reached"
    start = time.monotonic()
    next_tick = start
    delay = backoff_s
    if not connected:
        log.warning("source %s not available yet; retrying with backoff", source.name)
    else:
        log.info("capture: %s at %.2f fps for %.1f s (%s mode, budget %.4f Wh)", source.name, target_fps,
                 duration_s, model.power_mode, governor.budget_wh)
    try:
        while stop_reason == "duration reached":
            now = time.monotonic()
            elapsed = now - start
            if elapsed >= duration_s:
                break
            if max_frames is not None and frames >= max_frames:
                stop_reason = "max frames reached"
                break
            if now < next_tick:
                time.sleep(min(next_tick - now, duration_s - elapsed))
                continue
            frame, info = source.read(elapsed)
            if frame is None:
                connected = False
                if info == "end":
                    stop_reason = "source ended"
                    break
                # a live source dropped: keep what was written, reopen with exponential backoff
                log.warning("source %s disconnected; reconnecting in %.1f s", source.name, delay)
                time.sleep(min(delay, max(duration_s - (time.monotonic() - start), 0)))
                connected = source.open()
                if connected:
                    reconnects += 1
                    log.info("source %s reconnected", source.name)
                    delay = backoff_s
                else:
                    delay = min(delay * 2, max_backoff_s)
                next_tick = time.monotonic()
                continue
            t0 = time.monotonic()
            dets = pipeline.predict([frame])[0]
            t1 = time.monotonic()
            busy += t1 - t0
            governor.observe(t1 - t0)
            record = {"frame": frames, "t": round(t0 - start, 4), "latency_ms": round((t1 - t0) * 1000, 2),
                      "fps": round(governor.fps, 3), "detections": dets.to_records(names)}
            record.update(info)
            writer.write(record)
            if save_annotated:
                ok, jpg = cv2.imencode(".jpg", annotate(frame, dets, names))
                if ok:
                    _write_atomic(os.path.join(out_dir, "frames", f"{frames:06d}.jpg"), jpg.tobytes())
            frames += 1
            decision = governor.decide(time.monotonic() - start, busy)
            if decision != "keep":
                log.warning(governor.events[-1][2])
            if decision == "stop":
                stop_reason = "energy budget"
                break
            period = 1.0 / governor.fps
            next_tick += period
            now = time.monotonic()
            if next_tick < now:  # behind schedule: drop the missed ticks instead of catching up
                missed = int((now - next_tick) / period) + 1
                dropped_ticks += missed
                next_tick += missed * period
                next_tick = min(next_tick, now)
    finally:
        source.close()
        writer.close()
    wall = time.monotonic() - start
    if stop_reason == "duration reached" and not connected:
        stop_reason = "source disconnected and did not come back"
    summary = {
        "source": source.name, "frames": frames, "wall_s": round(wall, 3), "busy_s": round(busy, 3),
        "achieved_fps": round(frames / wall, 3) if wall > 0 else 0.0, "target_fps": target_fps,
        "final_fps": round(governor.fps, 3), "dropped_ticks": dropped_ticks,
        "source_frames_skipped": getattr(source, "skipped", 0), "reconnects": reconnects,
        "stop_reason": stop_reason, "power_mode": model.power_mode,
        "energy_wh": round(model.energy_wh(wall, busy), 6), "energy_budget_wh": governor.budget_wh,
        "energy_events": [{"t": t, "action": a, "reason": r} for t, a, r in governor.events],
        "backend": getattr(pipeline, "backend_kind", "?"),
    }
    _write_atomic(os.path.join(out_dir, "summary.json"), (json.dumps(summary, indent=2) + "\n").encode())
    log.info("capture done: %d frames in %.1f s (%.2f fps), %.5f Wh, stop: %s", frames, wall,
             summary["achieved_fps"], summary["energy_wh"], stop_reason)
    return summary
